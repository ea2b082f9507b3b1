"""Admin operations on organizations, grants, clients and the model catalog."""
