"""Limits: request and token rates, daily budgets and in-flight requests, per subject,
organization, tier and model (memory on one machine, Redis when replicated)."""
