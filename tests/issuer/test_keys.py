"""Signing keys in the database: sealing, first-start import, rotation across processes."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from pydantic import ValidationError

from gateway.issuer import keystore
from gateway.issuer.keys import new_key
from gateway.issuer.sealing import Sealer, SealError
from gateway.reasons import Reason
from gateway.settings import Settings
from tests.support.gateway import GatewayFactory, RunningGateway

DATABASES = pytest.mark.parametrize("database", ["sqlite", "postgres"])
KEK = "k" * 20 + "-test-kek-0123456789abcdef"


def test_sealed_key_opens_only_with_its_kek_and_its_kid() -> None:
    """AES-GCM with the kid as associated data: another KEK or another row does not open it."""
    key = new_key()
    sealed = Sealer(KEK).seal(key.pem(), kid=key.kid)
    assert key.pem() not in sealed.encode()
    assert Sealer(KEK).open(sealed, kid=key.kid) == key.pem()
    with pytest.raises(SealError, match="does not open"):
        Sealer(KEK + "x").open(sealed, kid=key.kid)
    with pytest.raises(SealError):
        Sealer(KEK).open(sealed, kid="another-kid")


@pytest.mark.parametrize("kek", ["changeme", "secret", "short-kek"])
def test_placeholder_kek_refused_outside_dev_mode(kek: str) -> None:
    """A placeholder or short KEK is a settings error unless dev mode is on."""
    with pytest.raises(ValidationError, match="key_encryption_key"):
        Settings(key_encryption_key=kek)
    Settings(key_encryption_key=kek, dev_mode=True)


def test_missing_kek_refused_when_keys_are_needed_outside_dev_mode() -> None:
    """Without a KEK, outside dev mode, the keys cannot be sealed: start-up says so."""
    with pytest.raises(ValueError, match="key_encryption_key"):
        keystore.sealer_for(Settings())
    assert isinstance(keystore.sealer_for(Settings(dev_mode=True)), Sealer)


def test_overlap_covers_ttl_reload_and_leeway() -> None:
    """A rotated key verifies for the token TTL, plus a reload period, plus clock leeway."""
    assert keystore.overlap(token_ttl_s=900, key_reload_s=60) == timedelta(seconds=990)


def _models(gw: RunningGateway, token: str) -> httpx.Response:
    return httpx.get(f"{gw.base_url}/v1/models", headers={"Authorization": f"Bearer {token}"})


def _kid(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


@DATABASES
def test_existing_key_file_is_imported_and_its_tokens_keep_verifying(
    gateway_factory: GatewayFactory, tmp_path: Path, database: str
) -> None:
    """An install's PEM key becomes the current key on first start: tokens it signed before
    the upgrade still verify, and new tokens carry the same kid."""
    old = new_key()
    path = tmp_path / "legacy.pem"
    path.write_bytes(old.pem())
    gw = gateway_factory.start(database=database, signing_key_file=path)
    assert [k["kid"] for k in httpx.get(f"{gw.base_url}/.well-known/jwks.json").json()["keys"]] == [
        old.kid
    ]
    client_id = gw.credentials["public"][0]
    now = int(time.time())
    before_upgrade = jwt.encode(
        {
            "iss": gw.settings.issuer,
            "aud": gw.settings.audience,
            "sub": client_id,
            "client_id": client_id,
            "org": gw.org_ids["public"],
            "tier": "public",
            "scope": "models",
            "iat": now,
            "exp": now + 300,
            "jti": "minted-by-the-old-install",
        },
        old.private_key,
        algorithm="ES256",
        headers={"kid": old.kid},
    )
    assert _models(gw, before_upgrade).status_code == 200
    assert _kid(gw.token("public")) == old.kid


def _cli(gw: RunningGateway, *args: str) -> Any:
    env = {
        **os.environ,
        "TACGW_DATABASE_URL": gw.database_url,
        "TACGW_DEV_MODE": "true",
        "TACGW_TOKEN_TTL_S": str(gw.settings.token_ttl_s),
        "TACGW_KEY_RELOAD_S": str(gw.settings.key_reload_s),
    }
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "keys", *args, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _until(check: Any, what: str) -> None:
    deadline = time.monotonic() + 20  # bounded: reloads happen every key_reload_s (1 s)
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"not within 20 s: {what}")
        time.sleep(0.2)


@DATABASES
def test_rotation_keeps_old_tokens_and_reaches_another_process(
    gateway_factory: GatewayFactory, database: str
) -> None:
    """`keys rotate`: new tokens use the new key; a token from before still verifies on
    every replica; a second gateway process accepts the new key's token without restart;
    `--retire-old-now` then makes the old keys' tokens fail everywhere."""
    gw = gateway_factory.start(database=database, key_reload_s=1.0, key_refresh_min_s=0)
    replica = gateway_factory.replica_process(gw)
    before = gw.token("critical")
    old_kid = _kid(before)
    assert _models(replica, before).status_code == 200

    rotated = _cli(gw, "rotate")
    assert rotated["rotated"] == [old_kid] and rotated["kid"] != old_kid
    _until(lambda: _kid(gw.token("critical")) == rotated["kid"], "gw signs with the new key")
    after = gw.token("critical")
    # The replica never reloaded on purpose: the unknown kid makes it look.
    assert _models(replica, after).status_code == 200
    for server in (gw, replica):
        assert _models(server, before).status_code == 200  # the overlap
        jwks = httpx.get(f"{server.base_url}/.well-known/jwks.json").json()["keys"]
        assert {k["kid"] for k in jwks} == {old_kid, rotated["kid"]}
    states = {k["kid"]: k["state"] for k in _cli(gw, "list")}
    assert states == {rotated["kid"]: "current", old_kid: "verifying"}

    emergency = _cli(gw, "rotate", "--retire-old-now")
    for server in (gw, replica):
        for token in (before, after):
            _until(
                lambda s=server, t=token: (
                    _models(s, t).json().get("error", {}).get("code") == Reason.TOKEN_UNKNOWN_KID
                ),
                "a retired key's token is refused",
            )
        jwks = httpx.get(f"{server.base_url}/.well-known/jwks.json").json()["keys"]
        assert [k["kid"] for k in jwks] == [emergency["kid"]]
    assert _models(replica, gw.token("critical")).status_code == 200


def test_rotated_key_leaves_the_jwks_once_its_last_token_expired(
    gateway_factory: GatewayFactory,
) -> None:
    """A key rotated longer ago than the overlap is retired: out of the JWKS, and a token
    it signed (even one claiming a later expiry) no longer verifies."""
    gw = gateway_factory.start(key_reload_s=1.0)
    old = gw.signing_key()
    keep = keystore.overlap(token_ttl_s=gw.settings.token_ttl_s, key_reload_s=1.0)
    long_ago = datetime.now(UTC) - keep - timedelta(seconds=5)
    sealer = keystore.sealer_for(gw.settings)

    async def rotate(engine: Any) -> keystore.Rotation:
        return await keystore.rotate(engine, sealer=sealer, keep_verifying=keep, now=long_ago)

    rotation = gw.run(rotate)
    assert rotation.retire_at < datetime.now(UTC)
    client_id = gw.credentials["public"][0]
    now = int(time.time())
    late = jwt.encode(
        {
            "iss": gw.settings.issuer,
            "aud": gw.settings.audience,
            "sub": client_id,
            "client_id": client_id,
            "org": gw.org_ids["public"],
            "tier": "public",
            "scope": "models",
            "iat": now,
            "exp": now + 300,
            "jti": "signed-by-a-retired-key",
        },
        old.private_key,
        algorithm="ES256",
        headers={"kid": old.kid},
    )
    _until(
        lambda: (
            [k["kid"] for k in httpx.get(f"{gw.base_url}/.well-known/jwks.json").json()["keys"]]
            == [rotation.new_kid]
        ),
        "the retired key leaves the JWKS",
    )
    assert _models(gw, late).json()["error"]["code"] == Reason.TOKEN_UNKNOWN_KID


def test_start_refuses_a_kek_that_does_not_open_the_stored_keys(
    gateway_factory: GatewayFactory,
) -> None:
    """Changing the KEK would make the keys unreadable: the next start fails, loudly."""
    gw = gateway_factory.start(key_encryption_key=KEK)
    other = Settings(**(gw.settings.model_dump() | {"key_encryption_key": KEK + "-other"}))
    with pytest.raises(SealError, match="does not open"):
        asyncio.run(keystore.prepare_signing_keys(other, keystore.sealer_for(other)))
