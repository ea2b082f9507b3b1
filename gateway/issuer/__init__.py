"""Issuer: the gateway's own OAuth2 authorization server (token endpoint, client auth, keys)."""
