"""Every reason a Rego policy can give is a `Reason`: callers never see an unnamed code."""

from __future__ import annotations

import re

from gateway.reasons import Reason
from tests.support.services import POLICY_DIR


def test_every_reason_a_policy_gives_is_a_known_reason() -> None:
    """Each `reasons contains "..."` in policies/ names a member of `Reason`."""
    given: set[str] = set()
    for path in POLICY_DIR.glob("*.rego"):
        if not path.name.endswith("_test.rego"):
            given |= set(re.findall(r'reasons contains "([a-z_]+)"', path.read_text()))
    assert {"tier_too_low", "org_revoked", "not_your_org"} <= given
    assert given <= {r.value for r in Reason}
