"""Limits: request rate limits per subject (memory on one machine, Redis when replicated)."""
