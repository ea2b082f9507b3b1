"""Trust tests: effective tier, org status, revocation."""
