"""Shared test helpers: fixtures for the real services started by scripts/test."""
