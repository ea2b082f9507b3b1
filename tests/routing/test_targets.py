"""What an operator may configure for a target: URL, host allow-list, headers, credentials."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.routing import credentials
from gateway.routing.targets import (
    check_headers,
    check_target_name,
    check_target_url,
    default_target_name,
    host_allowed,
)
from gateway.settings import Settings


@pytest.mark.parametrize(
    "url",
    [
        "ftp://vllm:8000/v1",
        "file:///etc/passwd",
        "gopher://x/v1",
        "vllm:8000/v1",
        "http:///v1",
        "http://vllm:0/v1",
        "http://vllm:99999/v1",
        "http://user:pw@vllm:8000/v1",
        "http://vllm:8000/v1?key=abc",
        "http://vllm:8000/v1#x",
    ],
)
def test_refused_urls(url: str) -> None:
    with pytest.raises(ValueError):
        check_target_url(url)


@pytest.mark.parametrize("url", ["http://vllm:8000/v1", "HTTPS://api.example.com/v1"])
def test_accepted_urls(url: str) -> None:
    assert check_target_url(url) == url


def test_host_allow_list() -> None:
    allowed = ["vllm-a", "*.models.example.com"]
    assert host_allowed("vllm-a", allowed)
    assert host_allowed("gpu1.models.example.com", allowed)
    assert host_allowed("GPU1.Models.Example.com.", allowed)
    assert not host_allowed("models.example.com", allowed)  # the wildcard is for subdomains
    assert not host_allowed("evilmodels.example.com", allowed)
    assert not host_allowed("vllm-b", allowed)
    check_target_url("http://vllm-a:8000/v1", allowed_hosts=allowed)
    with pytest.raises(ValueError, match="allowed_hosts"):
        check_target_url("http://169.254.169.254/v1", allowed_hosts=allowed)


def test_headers_may_not_replace_the_gateways_own() -> None:
    assert check_headers({"X-Tenant": "blue"}) == {"x-tenant": "blue"}
    for name in ("Authorization", "host", "Content-Length", "x-request-id", "Cookie"):
        with pytest.raises(ValueError, match="set by the gateway"):
            check_headers({name: "x"})
    with pytest.raises(ValueError, match="single-line"):
        check_headers({"x-a": "one\r\nx-injected: two"})
    with pytest.raises(ValueError, match="not a valid header name"):
        check_headers({"bad name": "x"})


def test_names() -> None:
    assert default_target_name("http://vllm-a:8000/v1") == "vllm-a:8000"
    assert default_target_name("https://api.example.com/v1") == "api.example.com"
    assert check_target_name("gpu-1.a_b:2") == "gpu-1.a_b:2"
    for bad in ("", "-x", "a b", "x" * 101, "a/b"):
        with pytest.raises(ValueError):
            check_target_name(bad)


def test_credential_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TACGW_TEST_TARGET_KEY", "sk-from-env\n")
    assert credentials.resolve("env:TACGW_TEST_TARGET_KEY") == "sk-from-env"
    monkeypatch.delenv("TACGW_TEST_TARGET_KEY")
    with pytest.raises(credentials.CredentialError, match="TACGW_TEST_TARGET_KEY"):
        credentials.resolve("env:TACGW_TEST_TARGET_KEY")


def test_credential_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_text("sk-from-file\n")
    assert credentials.resolve(f"file:{path}") == "sk-from-file"
    path.write_text("")
    with pytest.raises(credentials.CredentialError, match="one non-empty line"):
        credentials.resolve(f"file:{path}")
    path.write_text("two\nlines\n")
    with pytest.raises(credentials.CredentialError):
        credentials.resolve(f"file:{path}")
    with pytest.raises(credentials.CredentialError, match="cannot read"):
        credentials.resolve(f"file:{tmp_path / 'missing'}")


def test_credential_errors_never_contain_the_secret(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_text("sk-secret-line-1\nsk-secret-line-2\n")
    with pytest.raises(credentials.CredentialError) as caught:
        credentials.resolve(f"file:{path}")
    assert "sk-secret" not in str(caught.value)


@pytest.mark.parametrize(
    "ref", ["sk-live-123", "env:", "env:1BAD", "file:relative/path", "vault:x", ""]
)
def test_malformed_references(ref: str) -> None:
    """Refused without echoing the value (it may be a key pasted in by mistake)."""
    with pytest.raises(ValueError) as caught:
        credentials.check_reference(ref)
    assert "sk-live" not in str(caught.value)


def test_health_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nested settings: TACGW_UPSTREAM__HEALTH__* and the host allow-list as JSON."""
    monkeypatch.setenv("TACGW_UPSTREAM__HEALTH__ACTIVE_INTERVAL_S", "2.5")
    monkeypatch.setenv("TACGW_UPSTREAM__HEALTH__FAILURES_TO_DOWN", "1")
    monkeypatch.setenv("TACGW_UPSTREAM__ALLOWED_HOSTS", '["vllm-a", " *.Models.Internal "]')
    up = Settings().upstream
    assert (up.health.active_interval_s, up.health.failures_to_down) == (2.5, 1)
    assert up.allowed_hosts == ["vllm-a", "*.models.internal"]
    assert up.health.active_path == "/models" and up.max_response_bytes == 64 * 1024 * 1024
    monkeypatch.setenv("TACGW_UPSTREAM__HEALTH__ACTIVE_PATH", "http://elsewhere/models")
    with pytest.raises(ValidationError, match="active_path"):
        Settings()
