"""HTTP routers: thin; every decision is made in `gateway.pipeline` or a dependency."""
