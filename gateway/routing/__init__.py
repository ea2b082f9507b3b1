"""Routing: the requested model name → its catalog entry (upstream, tier floor)."""
