"""requirements.lock: every runtime dependency pinned with hashes, and what runs is it."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
LOCK = (ROOT / "requirements.lock").read_text()
# "name==version \" followed by its "--hash=sha256:..." lines, up to the next entry.
ENTRY = re.compile(r"^([A-Za-z0-9._-]+)==(\S+) \\\n((?:\s+--hash=sha256:[0-9a-f]{64}.*\n)+)", re.M)


def _pins() -> dict[str, str]:
    return {canonicalize_name(name): version for name, version, _ in ENTRY.findall(LOCK)}


def test_every_entry_has_hashes() -> None:
    """`pip install --require-hashes` refuses an entry without one: none may lack it."""
    names = re.findall(r"^([A-Za-z0-9._-]+)==", LOCK, re.M)
    assert names and len(ENTRY.findall(LOCK)) == len(names)


def test_every_runtime_dependency_is_locked() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pins = _pins()
    for spec in pyproject["project"]["dependencies"]:
        req = Requirement(spec)
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is not in requirements.lock: regenerate it"
        assert req.specifier.contains(pins[name]), f"{name}=={pins[name]} violates {spec}"


def test_the_venv_runs_the_locked_versions() -> None:
    """scripts/install-venv installed the lock as is: dev tools changed none of them."""
    for name, version in _pins().items():
        assert metadata.version(name) == version, name
