"""The audit log's settings: origin, key and checkpoint schedule from TACGW_AUDIT_LOG__*."""

from __future__ import annotations

import base64

import pytest
from pydantic import ValidationError

from gateway.audit.checkpoint import load_signer
from gateway.settings import Settings, audit_log_origin


def test_defaults_name_the_log_after_the_issuer() -> None:
    settings = Settings(issuer="https://gw.example.org:8443")
    assert audit_log_origin(settings) == "gw.example.org:8443/audit"
    assert settings.audit_log.checkpoint_every == 1000


def test_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    seed = base64.b64encode(bytes(range(32))).decode()
    monkeypatch.setenv("TACGW_AUDIT_LOG__ORIGIN", "audit.example.org/log")
    monkeypatch.setenv("TACGW_AUDIT_LOG__KEY_SEED", seed)
    monkeypatch.setenv("TACGW_AUDIT_LOG__CHECKPOINT_INTERVAL_S", "2.5")
    settings = Settings()
    assert audit_log_origin(settings) == "audit.example.org/log"
    assert settings.audit_log.checkpoint_interval_s == 2.5
    signer = load_signer(
        origin=audit_log_origin(settings),
        key_file=settings.audit_log.key_file,
        seed_b64=settings.audit_log.key_seed.get_secret_value(),
    )
    assert signer.verifier.vkey.startswith("audit.example.org/log+")
    assert seed not in repr(settings)  # the seed is a secret


@pytest.mark.parametrize(
    "bad",
    [{"origin": "has space"}, {"origin": "a+b"}, {"checkpoint_every": 0}, {"unknown": 1}],
)
def test_bad_values_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Settings(audit_log=bad)  # type: ignore[arg-type]
