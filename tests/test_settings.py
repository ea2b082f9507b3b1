"""`gateway.settings.Settings`: validation, sources (env, YAML) and their precedence."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from gateway.settings import Settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No TACGW_* variable from the outside world leaks into these tests."""
    for name in list(os.environ):
        if name.startswith("TACGW_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    yield


def _fields(err: ValidationError) -> set[str]:
    return {".".join(str(p) for p in e["loc"]) for e in err.errors()}


def _write_yaml(path: Path, data: dict[str, object]) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def test_defaults_are_valid() -> None:
    """Settings() with nothing set is a valid, non-dev configuration."""
    s = Settings()
    assert s.dev_mode is False
    assert s.database_url.startswith("sqlite+aiosqlite:///")
    assert s.token_ttl_s == 900
    assert s.upstream_api_key.get_secret_value() == ""


def test_every_invalid_field_reported_in_one_error() -> None:
    """Several bad fields come back together in a single ValidationError."""
    with pytest.raises(ValidationError) as err:
        Settings(
            token_ttl_s=1,
            max_body_bytes=1,
            upstream_api_key="changeme",
            issuer="http://gateway.example.com",
        )
    assert _fields(err.value) == {"token_ttl_s", "max_body_bytes", "upstream_api_key", "issuer"}


def test_nested_and_literal_errors_reported_together() -> None:
    """Nested upstream fields and literal choices are validated alongside the rest."""
    with pytest.raises(ValidationError) as err:
        Settings(
            policy_engine="magic",
            token_ttl_s=10**6,
            upstream={"pool_size": 0, "retries_before_first_byte": 9},
        )
    assert _fields(err.value) == {
        "policy_engine",
        "token_ttl_s",
        "upstream.pool_size",
        "upstream.retries_before_first_byte",
    }


def test_unknown_field_refused() -> None:
    """A misspelt setting is an error, not silently ignored."""
    with pytest.raises(ValidationError) as err:
        Settings(token_ttl=60)  # type: ignore[call-arg]
    assert _fields(err.value) == {"token_ttl"}


@pytest.mark.parametrize("key", ["changeme", "CHANGEME", "secret", "demo-upstream-key", "dev"])
def test_placeholder_upstream_key_refused_outside_dev_mode(key: str) -> None:
    """Example upstream keys are refused in a real deployment, whatever their case."""
    with pytest.raises(ValidationError) as err:
        Settings(upstream_api_key=key)
    assert _fields(err.value) == {"upstream_api_key"}


@pytest.mark.parametrize("key", ["changeme", "demo-upstream-key"])
def test_placeholder_upstream_key_accepted_in_dev_mode(key: str) -> None:
    """dev_mode accepts placeholder upstream keys."""
    assert Settings(dev_mode=True, upstream_api_key=key).upstream_api_key.get_secret_value() == key


def test_real_upstream_key_not_echoed_in_errors() -> None:
    """A validation error elsewhere never prints the real upstream key."""
    with pytest.raises(ValidationError) as err:
        Settings(upstream_api_key="sk-live-0123456789abcdef", token_ttl_s=1)
    assert _fields(err.value) == {"token_ttl_s"}
    assert "sk-live-0123456789abcdef" not in str(err.value)


def test_real_or_empty_upstream_key_accepted_and_hidden() -> None:
    """A real key is accepted and never shown in the settings' repr."""
    s = Settings(upstream_api_key="sk-live-0123456789abcdef")
    assert s.upstream_api_key.get_secret_value() == "sk-live-0123456789abcdef"
    assert "sk-live" not in repr(s)
    assert Settings(upstream_api_key="").upstream_api_key.get_secret_value() == ""


@pytest.mark.parametrize(
    "issuer",
    [
        "http://gateway.example.com",
        "http://10.0.0.5:8080",
        "HTTP://gateway.example.com",
        "http://127.0.0.1:8080@evil.example",
        "http://localhost.evil.example",
    ],
)
def test_non_loopback_http_issuer_refused(issuer: str) -> None:
    """A plain-http issuer that is not loopback is refused outside dev mode."""
    with pytest.raises(ValidationError) as err:
        Settings(issuer=issuer)
    assert _fields(err.value) == {"issuer"}


def test_non_loopback_http_issuer_accepted_in_dev_mode() -> None:
    """dev_mode accepts a plain-http issuer anywhere."""
    assert Settings(dev_mode=True, issuer="http://gw.lan:8080").issuer == "http://gw.lan:8080"


@pytest.mark.parametrize(
    ("issuer", "expected"),
    [
        ("https://gw.example.com/", "https://gw.example.com"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://localhost/", "http://localhost"),
        ("http://[::1]:8080", "http://[::1]:8080"),
        ("http://[::1]", "http://[::1]"),
    ],
)
def test_https_or_loopback_issuer_accepted(issuer: str, expected: str) -> None:
    """https anywhere and http on loopback are accepted; a trailing slash is dropped."""
    assert Settings(issuer=issuer).issuer == expected


def test_env_vars_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """TACGW_-prefixed variables, including nested ones with `__`, set the fields."""
    monkeypatch.setenv("TACGW_TOKEN_TTL_S", "120")
    monkeypatch.setenv("TACGW_AUDIENCE", "aud-from-env")
    monkeypatch.setenv("TACGW_UPSTREAM__POOL_SIZE", "7")
    monkeypatch.setenv("TACGW_DEV_MODE", "true")
    monkeypatch.setenv("TACGW_UPSTREAM_API_KEY", "changeme")
    s = Settings()
    assert (s.token_ttl_s, s.audience, s.upstream.pool_size, s.dev_mode) == (
        120,
        "aud-from-env",
        7,
        True,
    )
    assert s.upstream_api_key.get_secret_value() == "changeme"


def test_invalid_env_var_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad value from the environment fails validation like any other."""
    monkeypatch.setenv("TACGW_TOKEN_TTL_S", "5")
    with pytest.raises(ValidationError) as err:
        Settings()
    assert _fields(err.value) == {"token_ttl_s"}


def test_yaml_file_is_read(tmp_path: Path) -> None:
    """A YAML file passed as config_file sets the fields, nested ones included."""
    path = _write_yaml(
        tmp_path / "gw.yaml",
        {"token_ttl_s": 300, "audience": "aud-yaml", "upstream": {"read_timeout_s": 9.5}},
    )
    s = Settings(config_file=path)
    assert (s.token_ttl_s, s.audience, s.upstream.read_timeout_s) == (300, "aud-yaml", 9.5)


def test_env_wins_over_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Environment variables take precedence over the YAML file; arguments over both."""
    path = _write_yaml(
        tmp_path / "gw.yaml", {"token_ttl_s": 300, "audience": "aud-yaml", "catalog_ttl_s": 2}
    )
    monkeypatch.setenv("TACGW_TOKEN_TTL_S", "600")
    monkeypatch.setenv("TACGW_AUDIENCE", "aud-env")
    s = Settings(config_file=path, audience="aud-arg")
    assert (s.token_ttl_s, s.audience, s.catalog_ttl_s) == (600, "aud-arg", 2)


def test_config_file_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """TACGW_CONFIG_FILE names the YAML file when no argument does."""
    path = _write_yaml(tmp_path / "gw.yaml", {"dev_mode": True, "upstream_api_key": "changeme"})
    monkeypatch.setenv("TACGW_CONFIG_FILE", str(path))
    s = Settings()
    assert s.dev_mode is True
    assert s.upstream_api_key.get_secret_value() == "changeme"


def test_env_dev_mode_false_overrides_yaml_dev_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dev_mode=false from the environment re-enables the placeholder check over YAML."""
    path = _write_yaml(tmp_path / "gw.yaml", {"dev_mode": True, "upstream_api_key": "changeme"})
    monkeypatch.setenv("TACGW_DEV_MODE", "false")
    with pytest.raises(ValidationError) as err:
        Settings(config_file=path)
    assert _fields(err.value) == {"upstream_api_key"}


def test_unknown_key_in_yaml_refused(tmp_path: Path) -> None:
    """A misspelt key in the YAML file is an error."""
    path = _write_yaml(tmp_path / "gw.yaml", {"token_tll_s": 300})
    with pytest.raises(ValidationError) as err:
        Settings(config_file=path)
    assert _fields(err.value) == {"token_tll_s"}


def test_missing_config_file_refused(tmp_path: Path) -> None:
    """A config_file that does not exist is an error, not an empty configuration."""
    with pytest.raises(FileNotFoundError):
        Settings(config_file=tmp_path / "nope.yaml")


def test_malformed_yaml_refused(tmp_path: Path) -> None:
    """A YAML syntax error fails at start."""
    path = tmp_path / "bad.yaml"
    path.write_text("token_ttl_s: [300\n")
    with pytest.raises(yaml.YAMLError):
        Settings(config_file=path)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///./var/x.db", "sqlite+aiosqlite:///./var/x.db"),
        ("sqlite:////abs/x.db", "sqlite+aiosqlite:////abs/x.db"),
        ("postgresql://u:p@db:5432/gw", "postgresql+asyncpg://u:p@db:5432/gw"),
        ("postgres://u@db/gw", "postgresql+asyncpg://u@db/gw"),
        ("postgresql+asyncpg://u@db/gw", "postgresql+asyncpg://u@db/gw"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
    ],
)
def test_database_url_rewritten_to_async_driver(url: str, expected: str) -> None:
    """Sync-driver URLs become their async equivalents; async ones are kept."""
    assert Settings(database_url=url).database_url == expected


def test_database_url_rewritten_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The async-driver rewrite applies to values from the environment too."""
    monkeypatch.setenv("TACGW_DATABASE_URL", "postgresql://u@db/gw")
    assert Settings().database_url == "postgresql+asyncpg://u@db/gw"


def test_rate_limits_are_parsed_at_start() -> None:
    """A rate the `limits` library cannot parse, or one allowing nothing, is a settings error."""
    with pytest.raises(ValidationError) as err:
        Settings(rate_limit="garbage", token_endpoint_rate_limit="0/minute")
    assert _fields(err.value) == {"rate_limit", "token_endpoint_rate_limit"}
    messages = " ".join(e["msg"] for e in err.value.errors())
    assert "'garbage' is not a rate" in messages and "allows no request" in messages
    ok = Settings(rate_limit="10/second;600/hour", token_endpoint_rate_limit="5 per minute")
    assert ok.rate_limit == "10/second;600/hour"


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("bogus://x", "unknown rate limit storage bogus://"),
        ("redis", "unknown rate limit storage 'redis'"),
        ("memcached://127.0.0.1:11211", "needs the Python package pymemcache"),
    ],
)
def test_limits_storage_checked_without_connecting(uri: str, message: str) -> None:
    """An unknown storage scheme, or one whose driver is not installed, is a settings error."""
    with pytest.raises(ValidationError) as err:
        Settings(rate_limit_storage=uri)
    assert _fields(err.value) == {"rate_limit_storage"}
    assert message in err.value.errors()[0]["msg"]


def test_limits_storage_accepts_redis_without_reaching_it() -> None:
    """Known schemes pass even when nothing listens there: checking never connects."""
    for uri in ("memory://", "redis://127.0.0.1:9/0", "async+redis://127.0.0.1:9"):
        assert Settings(rate_limit_storage=uri).rate_limit_storage == uri
