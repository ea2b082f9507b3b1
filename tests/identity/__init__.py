"""Identity tests: token issuance and verification."""
