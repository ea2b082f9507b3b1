"""Trust: what the database says a principal and its organization hold now, as a `Trust`."""
