"""Audit: one durable, append-only record per access decision, allowed or denied."""
