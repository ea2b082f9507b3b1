"""Jinja2 templates of the console (autoescaped) and the context every page gets."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from fastapi import Request
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import HTMLResponse

from gateway.console.sessions import Session

HTMX = "htmx-2.0.11.min.js"  # vendored from npm htmx.org (static/htmx-LICENSE.txt)

_env = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _when(value: Any) -> str:
    """An instant as `2026-11-27 10:04:05Z` (ISO text or datetime); empty for None."""
    if value is None or value == "":
        return ""
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    if not isinstance(when, datetime):
        return str(value)
    if when.tzinfo is not None:
        when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%d %H:%M:%SZ")


def _pretty(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()


_env.filters["when"] = _when
_env.filters["pretty"] = _pretty


def is_htmx(request: Request) -> bool:
    """An htmx request wants the fragment only, not the whole page."""
    return request.headers.get("hx-request") == "true"


def page(
    request: Request,
    template: str,
    *,
    session: Session | None,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    html = _env.get_template(template).render(
        user=session,
        csrf=session.csrf if session else "",
        path=request.url.path,
        htmx=HTMX,
        **context,
    )
    return HTMLResponse(html, status_code=status, headers=headers)
