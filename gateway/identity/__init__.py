"""Identity: bearer token → verified `Principal`; nothing else."""
