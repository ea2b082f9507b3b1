"""A served app settles its heap after startup (gateway/heap.py); an app built for a test
or a tool does not (frozen objects are never collected)."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from gateway.app import create_app
from gateway.db.migrate import upgrade
from gateway.settings import Settings


def _settings(tmp_path: Path) -> Settings:
    url = f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}"
    upgrade(url)
    return Settings(dev_mode=True, database_url=url)


@pytest.mark.parametrize("served", [True, False])
async def test_only_a_served_app_freezes_what_startup_left(tmp_path: Path, served: bool) -> None:
    gc.unfreeze()
    app = create_app(_settings(tmp_path), served=served)
    try:
        async with app.router.lifespan_context(app):
            frozen = gc.get_freeze_count()
            if served:
                # Startup's survivors (modules, routes, the runtime) are out of the
                # collector's sight; the app's own state among them.
                assert frozen > 10_000
                assert gc.is_tracked(app.state.runtime) and frozen >= len(gc.get_objects()) // 2
            else:
                assert frozen == 0
    finally:
        gc.unfreeze()
