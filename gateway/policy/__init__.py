"""Policy: one access decision per request from the Rego policies in `policies/`."""
