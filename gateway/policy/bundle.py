"""The policy files on disk: Rego modules (tests excluded), data, and their version hash."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

# Builtins whose answer is not a function of input and data alone.
_NONDETERMINISTIC = ("time.now_ns", "http.send", "rand.", "uuid.", "opa.runtime", "net.lookup")


@dataclass(frozen=True)
class PolicyBundle:
    modules: dict[str, str]
    data: dict[str, Any]
    version: str

    @cached_property
    def sha256(self) -> str:
        """The whole digest of which `version` is a prefix: the key of the audit archive."""
        return bundle_digest(self.modules, self.data)

    @property
    def data_text(self) -> str:
        """The data as the digest reads it (canonical JSON): what an archive keeps."""
        return _canonical(self.data)

    @property
    def deterministic(self) -> bool:
        """True when a decision depends on input and data only, so it may be memoized."""
        return not any(b in text for text in self.modules.values() for b in _NONDETERMINISTIC)

    @property
    def tiers(self) -> list[str]:
        tiers = self.data.get("tacgw", {}).get("tiers")
        if not isinstance(tiers, list) or not all(isinstance(t, str) for t in tiers):
            raise ValueError("policies/data.json must define tacgw.tiers as a list of names")
        return tiers


def load_bundle(directory: Path) -> PolicyBundle:
    if not directory.is_dir():
        raise FileNotFoundError(f"policy directory not found: {directory}")
    modules = {
        p.name: p.read_text()
        for p in sorted(directory.glob("*.rego"))
        if not p.name.endswith("_test.rego")
    }
    if not modules:
        raise FileNotFoundError(f"no Rego modules in {directory}")
    data_file = directory / "data.json"
    data = json.loads(data_file.read_text()) if data_file.exists() else {}
    return PolicyBundle(modules=modules, data=data, version=bundle_version(modules, data))


def bundle_version(modules: dict[str, str], data: Any) -> str:
    """The version names exactly the policy text and data that decide; audit rows carry it.

    Computed from file names (not paths), module text and canonical JSON data, so that an
    OPA server that loaded the same files yields the same version (`opa.py`).
    """
    return bundle_digest(modules, data)[:16]


def bundle_digest(modules: dict[str, str], data: Any) -> str:
    digest = hashlib.sha256()
    for name in sorted(modules):
        digest.update(name.encode() + b"\0" + modules[name].encode() + b"\0")
    digest.update(_canonical(data).encode())
    return digest.hexdigest()


def bundle_of(modules: dict[str, str], data_text: str) -> PolicyBundle:
    """A bundle from its texts, as the audit archive keeps them (for decision replay)."""
    data = json.loads(data_text)
    return PolicyBundle(modules=dict(modules), data=data, version=bundle_version(modules, data))


def _canonical(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"))
