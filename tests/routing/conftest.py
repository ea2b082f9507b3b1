"""Fixtures of the routing tests."""

from tests.routing.support import upstreams  # noqa: F401
