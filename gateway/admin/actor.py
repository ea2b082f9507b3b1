"""Who is acting: the subject behind an admin operation, as its audit event names it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Actor:
    subject: str
    roles: tuple[str, ...] = ()
    org_id: str | None = None
    client_id: str | None = None

    @classmethod
    def cli(cls, name: str = "cli-admin") -> Actor:
        """An operator at the CLI: whoever can reach the database is an admin already."""
        return cls(subject=name, roles=("admin",))

    def as_dict(self) -> dict[str, object]:
        return {
            "subject": self.subject,
            "roles": list(self.roles),
            "org_id": self.org_id,
            "client_id": self.client_id,
        }
