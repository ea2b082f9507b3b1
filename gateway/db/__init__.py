"""Storage: the SQLModel tables, the async engine and the Alembic migrations."""
