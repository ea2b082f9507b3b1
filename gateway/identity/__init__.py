"""Identity: bearer token → verified `Principal`; and the gateway's own token issuer."""
