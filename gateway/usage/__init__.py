"""Usage: the tokens each allowed call consumed, as the upstream reported them or estimated."""
