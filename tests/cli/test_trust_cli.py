"""The trust commands as an operator runs them: real processes, a real loopback DNS server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.proof_servers import LoopbackDns

CLI = [sys.executable, "-m", "gateway.cli"]


class Cli:
    def __init__(self, tmp_path: Path, dns: LoopbackDns) -> None:
        self.cwd = tmp_path
        self.env = {
            **os.environ,
            "TACGW_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
            "TACGW_VERIFICATION__RESOLVERS": json.dumps([dns.address]),
            "TACGW_VERIFICATION__DNS_TIMEOUT_S": "2",
        }

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CLI, *args],
            env=self.env,
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def json(self, *args: str) -> Any:
        result = self.run(*args, "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def error(self, *args: str) -> str:
        """The one line an operator's mistake prints (exit status 1, no traceback)."""
        result = self.run(*args)
        assert result.returncode == 1 and result.stdout == "", result
        (line,) = result.stderr.splitlines()
        assert line.startswith("error: ")
        return line


@pytest.mark.timeout(360)  # some twenty CLI processes, each importing the whole gateway
def test_verify_an_organization_from_the_cli(tmp_path: Path, loopback_dns: LoopbackDns) -> None:
    """apply → challenge → check (fails, then passes) → approve → grants → clients → revoke."""
    cli = Cli(tmp_path, loopback_dns)
    assert cli.run("migrate").returncode == 0
    org = cli.json(
        "org",
        "apply",
        "Grid Defenders",
        "--domain",
        "grid-defenders.com",
        "--sector",
        "energy",
        "--country",
        "US",
        "--evidence",
        "CISA letter",
        "--by",
        "carol",
    )
    assert (org["status"], org["domain"]) == ("applied", "grid-defenders.com")
    assert "(domain_taken)" in cli.error(
        "org",
        "apply",
        "Other",
        "--domain",
        "GRID-defenders.com",
        "--sector",
        "energy",
        "--country",
        "US",
    )
    assert "(domain_is_ip)" in cli.error(
        "org", "apply", "Other", "--domain", "192.0.2.1", "--sector", "energy", "--country", "US"
    )

    challenge = cli.json("org", "challenge", "Grid Defenders", "--method", "dns")
    assert "_tacgw-challenge.grid-defenders.com" in challenge["publish"]
    first = cli.json("org", "check", "Grid Defenders", str(challenge["challenge_id"]))
    assert first["result"] == "failed" and "NXDOMAIN" in first["evidence"]
    assert "(proof_missing)" in cli.error("org", "approve", "Grid Defenders", "--tier", "critical")
    loopback_dns.txt["_tacgw-challenge.grid-defenders.com"] = [challenge["token"]]
    assert (
        cli.json("org", "check", "Grid Defenders", str(challenge["challenge_id"]))["result"]
        == "passed"
    )

    approved = cli.json(
        "org",
        "approve",
        "Grid Defenders",
        "--tier",
        "critical",
        "--days",
        "200",
        "--reason",
        "grid SOC",
        "--by",
        "alice",
    )
    assert (approved["status"], approved["tier"]) == ("verified", "critical")
    assert [o["name"] for o in cli.json("org", "list", "--status", "verified")] == [
        "Grid Defenders"
    ]
    shown = cli.json("org", "show", "Grid Defenders")
    assert shown["challenges"][0]["result"] == "passed"
    assert shown["members"] == [{**shown["members"][0], "subject": "carol", "role": "org_admin"}]

    assert "(tier_not_for_individuals)" in cli.error(
        "org", "grant", "Grid Defenders", "critical", "--subject", "ann", "--reason", "x"
    )
    in_100_days = (datetime.now(UTC) + timedelta(days=100)).date().isoformat()
    individual = cli.json(
        "org",
        "grant",
        "Grid Defenders",
        "verified",
        "--subject",
        "ann",
        "--expires",
        in_100_days,
        "--reason",
        "ID checked",
    )
    assert (individual["subject"], individual["expires_at"][:10]) == ("ann", in_100_days)
    assert "(field_invalid)" in cli.error(  # more than three years ahead
        "org",
        "grant",
        "Grid Defenders",
        "verified",
        "--subject",
        "bo",
        "--expires",
        "2099-01-01",
        "--reason",
        "x",
    )
    assert "not an ISO 8601" in cli.error(
        "org",
        "grant",
        "Grid Defenders",
        "verified",
        "--subject",
        "bo",
        "--expires",
        "next tuesday",
        "--reason",
        "x",
    )
    soon = cli.json("grant", "expiring", "--days", "201")
    assert [g["tier"] for g in soon] == ["verified", "critical"]  # soonest first
    assert [g["tier"] for g in cli.json("grant", "expiring", "--days", "150")] == ["verified"]
    grant_id = soon[1]["grant_id"]
    assert cli.json("grant", "revoke", str(grant_id), "--reason", "audit finding")["live"] is False
    assert "(already_revoked)" in cli.error("grant", "revoke", str(grant_id), "--reason", "again")
    listed = cli.json("grant", "list", "--org", "Grid Defenders")
    assert [(g["tier"], g["live"]) for g in listed] == [("critical", False), ("verified", True)]

    client = cli.json("client", "create", "Grid Defenders", "--name", "SOC", "--role", "org_admin")
    assert client["roles"] == "org_admin"
    rotated = cli.json("client", "rotate", client["client_id"])
    assert rotated["client_secret"] != client["client_secret"]
    assert cli.json("client", "revoke", client["client_id"])["revoked_at"]
    assert "(already_revoked)" in cli.error("client", "revoke", client["client_id"])

    cli.json("model", "add", "cyber", "--upstream", "http://127.0.0.1:9/v1", "--tier", "critical")
    assert cli.json("model", "disable", "cyber")["enabled"] is False
    assert cli.json("model", "remove", "cyber")["removed"] is True
    assert "(model_not_found)" in cli.error("model", "remove", "cyber")

    suspended = cli.json("org", "suspend", "Grid Defenders", "--reason", "incident 7")
    assert suspended["status"] == "suspended"
    stale = cli.error("org", "reinstate", "Grid Defenders", "--version", "1")
    assert "(version_conflict)" in stale
    assert cli.json("org", "revoke", "Grid Defenders", "--reason", "left")["status"] == "revoked"
    assert "(transition_not_allowed)" in cli.error("org", "reinstate", "Grid Defenders")

    events = [e["endpoint"] for e in cli.json("audit", "tail", "-n", "100")]
    for action in ("org.apply", "org.challenge", "org.approve", "grant.revoke", "org.revoke"):
        assert f"admin.{action}" in events
