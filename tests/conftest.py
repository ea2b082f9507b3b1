"""Shared pytest configuration.

The real-service fixtures (postgres_url, redis_url, opa_bin, opa_server) live in
tests/support/services.py; scripts/test starts the services they point at.
"""

from tests.support.gateway import *  # noqa: F403
from tests.support.proof_servers import *  # noqa: F403
from tests.support.services import *  # noqa: F403
from tests.support.upstream import *  # noqa: F403
