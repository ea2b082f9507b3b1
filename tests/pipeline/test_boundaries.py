"""The shape holds: no web framework below `api/`, no import cycle between stage packages,
one audit commit per record, and every code the policies give is a `Reason`."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from sqlalchemy import text

from gateway.audit.record import AuditDraft
from gateway.audit.writer import AuditWriter
from gateway.db.access import make_request_db
from gateway.db.migrate import upgrade
from gateway.metrics import Metrics
from gateway.reasons import Reason
from tests.support.services import POLICY_DIR, REPO_ROOT

GATEWAY = REPO_ROOT / "gateway"
FRAMEWORKS = ("fastapi", "starlette", "uvicorn", "slowapi")
# Where HTTP may be known: the routers, the app factory, serving, and demo servers.
HTTP_ALLOWED = ("api", "app.py", "serve.py", "demo", "cli", "console")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _modules() -> list[Path]:
    return sorted(p for p in GATEWAY.rglob("*.py") if "migrations" not in p.parts)


def test_no_web_framework_below_api() -> None:
    """Only the HTTP layer imports a web framework; the stages and pipeline are plain code."""
    offenders = []
    for path in _modules():
        rel = path.relative_to(GATEWAY)
        if rel.parts[0] in HTTP_ALLOWED or str(rel) in HTTP_ALLOWED:
            continue
        bad = {m for m in _imports(path) if m.split(".")[0] in FRAMEWORKS}
        if bad:
            offenders.append(f"{rel}: {sorted(bad)}")
    assert not offenders, offenders


def test_no_import_cycle_between_packages() -> None:
    """Package-level imports form a DAG (identity and trust used to import each other)."""
    edges: dict[str, set[str]] = {}
    for path in _modules():
        rel = path.relative_to(GATEWAY)
        if len(rel.parts) < 2:
            continue
        pkg = rel.parts[0]
        for module in _imports(path):
            parts = module.split(".")
            if parts[0] == "gateway" and len(parts) > 1 and parts[1] != pkg:
                target = GATEWAY / parts[1]
                if target.is_dir():
                    edges.setdefault(pkg, set()).add(parts[1])

    def cycle_from(start: str) -> list[str] | None:
        stack = [(start, [start])]
        while stack:
            node, trail = stack.pop()
            for nxt in edges.get(node, ()):
                if nxt == start:
                    return [*trail, nxt]
                if nxt not in trail:
                    stack.append((nxt, [*trail, nxt]))
        return None

    cycles = [c for p in edges if (c := cycle_from(p))]
    assert not cycles, cycles


def test_every_policy_reason_is_a_reason() -> None:
    """A reason the Rego policies give but `Reason` lacks would surface as policy_error."""
    given: set[str] = set()
    for path in POLICY_DIR.glob("*.rego"):
        given |= set(re.findall(r'reasons contains "([a-z_]+)"', path.read_text()))
    assert given, "no reasons found in policies/"
    assert given <= {r.value for r in Reason}, given - {r.value for r in Reason}


async def test_a_second_commit_fails_loudly(tmp_path: Path) -> None:
    """Regression: `AuditDraft.commit` silently ignored a second commit, hiding bugs."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}"
    upgrade(url)
    store = make_request_db(url, sqlite_synchronous="FULL")
    writer = AuditWriter(store)
    writer.start()
    try:
        draft = AuditDraft(endpoint="chat.completions", writer=writer, metrics=Metrics())
        await draft.commit(allow=False, status=401, reasons=(Reason.TOKEN_MISSING,))
        with pytest.raises(RuntimeError, match="committed twice"):
            await draft.commit(allow=True, status=200, reasons=(Reason.ALLOWED,))
        query = text("SELECT status FROM auditevent WHERE id = :id")
        rows = await store.read(query, {"id": draft.decision_id})
        assert [r[0] for r in rows] == [401]
    finally:
        await writer.close()
        await store.close()
