"""Token usage for an outcome event, from the usage accounting's own figures.

The pipeline meters every allowed call (`gateway.usage`: the upstream's `usage` object,
a stream's final usage chunk, or the gateway's own count); this module only maps those
figures onto the event's shape, so the audit log and usage accounting never disagree.
Numbers are checked (non-negative integers below 2^53): a misbehaving upstream cannot
make the audit event unwritable.
"""

from __future__ import annotations

from gateway.audit.canonical import MAX_SAFE_INT
from gateway.audit.event import Usage
from gateway.usage.figures import Usage as Metered


def audit_usage(metered: Metered | None) -> Usage | None:
    """The event's usage: source "estimated" when the gateway counted, else "upstream"."""
    if metered is None:
        return None
    figures = (metered.prompt, metered.completion, metered.total)
    if not all(type(n) is int and 0 <= n <= MAX_SAFE_INT for n in figures):
        return None
    source = "estimated" if metered.estimated else "upstream"
    return Usage(metered.prompt, metered.completion, metered.total, source=source)
