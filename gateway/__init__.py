"""TAC Gateway: a tiered trusted-access gateway for specialized models."""
