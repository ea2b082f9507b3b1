"""The one settings object: read from `TACGW_*` variables and an optional YAML file."""

from __future__ import annotations

import importlib.resources
import importlib.util
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import limits.aio.storage  # registers the async storages' schemes
import limits.storage
import yaml
from limits import parse_many
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)


def packaged_policies() -> Path:
    """The packaged policies: policies/ in a checkout, inside site-packages once installed."""
    root = importlib.resources.files("gateway.policies")
    if not isinstance(root, Path):  # e.g. imported from a zip: OPA and we need real files
        raise RuntimeError(f"the packaged policies are not a directory ({root}); set policy_dir")
    return root


# Values that ship in examples; a real deployment must replace them.
PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "secret", "dev", "demo-upstream-key"})


class HealthSettings(BaseModel):
    """When an upstream target is taken out of rotation, and how it comes back."""

    # Passive: this many consecutive failures (connect error, timeout before the answer,
    # 5xx) take a target out for a back-off that doubles at each new ejection, up to the cap.
    failures_to_down: int = Field(3, ge=1, le=100)
    backoff_s: float = Field(5.0, gt=0)
    backoff_max_s: float = Field(300.0, gt=0)
    # Active: a GET of `active_path` below each target's URL every `active_interval_s`
    # seconds (0: off). Only a 2xx counts as healthy.
    active_interval_s: float = Field(0.0, ge=0)
    active_path: str = "/models"
    active_timeout_s: float = Field(2.0, gt=0)

    @field_validator("active_path")
    @classmethod
    def _relative_path(cls, value: str) -> str:
        # Appended to the target's base URL: an absolute URL here would leave the target.
        if not value.startswith("/") or "://" in value or value.startswith("//"):
            raise ValueError("must be a path starting with '/', e.g. /models")
        return value


class UpstreamSettings(BaseSettings):
    """How the gateway talks to model servers."""

    connect_timeout_s: float = Field(5.0, gt=0)
    read_timeout_s: float = Field(120.0, gt=0)
    pool_size: int = Field(100, ge=1)
    # The per-request budget of further tries before the first byte (failover included).
    retries_before_first_byte: int = Field(1, ge=0, le=5)
    transport: Literal["aiohttp", "httpx"] = "aiohttp"
    # Empty: any host. Otherwise a target's host must be listed ("*.example.com" matches
    # subdomains); a target outside the list is refused by the CLI and skipped at load.
    allowed_hosts: list[str] = Field(default_factory=list)
    # The URL schemes a target may use; a target with another scheme is refused by the CLI
    # and the admin API and skipped at load. Production may drop "http".
    allowed_schemes: list[Literal["http", "https"]] = Field(
        default_factory=lambda: ["http", "https"],  # type: ignore[arg-type]
        min_length=1,
    )
    # An upstream answer larger than this (whole body, or a stream's total) is cut off.
    max_response_bytes: int = Field(64 * 1024 * 1024, ge=1024)
    health: HealthSettings = Field(default_factory=HealthSettings)

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        return [h.strip().lower().rstrip(".") for h in value if h.strip()]


class ClaimMapping(BaseModel):
    """Where a federated issuer puts what the gateway needs (dotted paths for nesting)."""

    model_config = ConfigDict(extra="forbid")

    subject: str = "sub"
    org: str | None = "org"  # matched against `orgissuer.org_claim`
    roles: str | None = None  # e.g. "realm_access.roles" (Keycloak), "roles" (Entra)
    tier: str | None = None  # a tier name the IdP asserts; capped by the database anyway
    acr: str | None = "acr"
    auth_time: str | None = "auth_time"


class FederatedIssuer(BaseModel):
    """An identity provider whose access tokens the gateway accepts."""

    model_config = ConfigDict(extra="forbid")

    issuer: str
    # One of them: OpenID discovery (its `issuer` must equal the one above) or the JWKS.
    discovery_url: str | None = None
    jwks_uri: str | None = None
    audience: str
    # Pinned before any key lookup; HS* never (a JWKS holds public keys).
    algorithms: list[str] = Field(default_factory=lambda: ["RS256"], min_length=1)
    claims: ClaimMapping = Field(default_factory=ClaimMapping)
    # The highest tier a token of this issuer may claim (None: the highest tier).
    max_tier: str | None = None
    # JWKS refreshed this often; on an unknown kid at most once per `refresh_min_s`.
    jwks_ttl_s: float = Field(300.0, gt=0)
    refresh_min_s: float = Field(30.0, ge=0)
    # While the IdP is down, cached keys verify for this long after the last fetch; then
    # its tokens are refused with 503 `idp_unavailable` (fail closed).
    max_stale_s: float = Field(3600.0, gt=0)

    @field_validator("algorithms")
    @classmethod
    def _asymmetric(cls, value: list[str]) -> list[str]:
        bad = [a for a in value if a not in ASYMMETRIC_ALGORITHMS]
        if bad:
            raise ValueError(
                f"{bad} not allowed; use asymmetric algorithms: {sorted(ASYMMETRIC_ALGORITHMS)}"
            )
        return value

    @field_validator("issuer")
    @classmethod
    def _no_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @model_validator(mode="after")
    def _one_key_source(self) -> FederatedIssuer:
        if bool(self.discovery_url) == bool(self.jwks_uri):
            raise ValueError("set exactly one of discovery_url and jwks_uri")
        return self


ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"}
)


class VerificationSettings(BaseSettings):
    """How domain proof is checked (gateway/trust/proof.py)."""

    # Resolvers asked for the TXT record, as "ip:port"; every one must see the token, so
    # that one resolver's stale or spoofed answer cannot pass a check on its own.
    resolvers: list[str] = Field(default_factory=lambda: ["1.1.1.1:53", "8.8.8.8:53"])
    dns_timeout_s: float = Field(5.0, gt=0, le=60)
    https_timeout_s: float = Field(10.0, gt=0, le=60)
    challenge_ttl_s: int = Field(72 * 3600, ge=60, le=30 * 86400)
    # Tests only (dev mode): send the HTTPS check to this base URL, e.g. a loopback
    # server, with the domain in the Host header. Refused outside dev mode.
    https_base_override: str | None = None

    @field_validator("resolvers")
    @classmethod
    def _ip_port(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("name at least one resolver as ip:port")
        for entry in value:
            parse_resolver(entry)
        return value


def parse_resolver(entry: str) -> tuple[str, int]:
    """'192.0.2.1:53' or '[2001:db8::1]:53' → (ip, port); ValueError otherwise."""
    import ipaddress

    host, sep, port = entry.rpartition(":")
    host = host.strip("[]")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"resolver {entry!r} must be ip:port")
    ipaddress.ip_address(host)  # a resolver named by hostname would need a resolver
    return host, int(port)


class ScreeningSettings(BaseSettings):
    """How misalignment screenings are run (CLI, admin API, demo) and how long reports count."""

    report_ttl_days: float = Field(90.0, gt=0)
    samples: int = Field(100, ge=1, le=10_000)  # per condition
    concurrency: int = Field(8, ge=1, le=256)
    temperature: float = Field(1.0, ge=0, le=2)
    max_tokens: int = Field(2048, ge=16)
    timeout_s: float = Field(120.0, gt=0)
    retries: int = Field(2, ge=0, le=10)
    max_turns: int = Field(3, ge=1, le=10)
    use_tools: bool = True
    # An optional grader model (OpenAI-compatible); empty URL: the deterministic rubric only.
    grader_url: str = ""
    grader_model: str = ""
    grader_api_key: SecretStr = SecretStr("")

    @field_validator("grader_api_key")
    @classmethod
    def _grader_named(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        # Checked on the last grader field so that both URL and model have been read.
        if info.data.get("grader_url") and not info.data.get("grader_model"):
            raise ValueError("grader_url is set: set grader_model too")
        return value


class TierLimits(BaseModel):
    """One tier's limits, overriding `tacgw.limits.tiers` of the policy data field by field.

    Unset: the policy data's value. 0: no limit of that kind for the tier.
    """

    model_config = {"extra": "forbid"}

    requests_per_minute: int | None = Field(None, ge=0)  # per subject and model
    tokens_per_minute: int | None = Field(None, ge=0)  # per subject and model
    daily_tokens: int | None = Field(None, ge=0)  # per organization, per UTC day
    in_flight: int | None = Field(None, ge=0)  # per organization
    # When the limits storage (Redis) fails: refuse (503 limits_unavailable) or admit.
    on_outage: Literal["closed", "open"] | None = None


class AuditLogSettings(BaseModel):
    """The audit transparency log: who signs its checkpoints, and how often."""

    model_config = ConfigDict(extra="forbid")

    # The log's name in checkpoints and the signing key's name; empty: "<issuer host>/audit".
    origin: str = Field("", pattern=r"^[^\s+]*$")
    key_file: Path = Path("./var/audit-log-key.pem")
    # Base64 of a 32-byte Ed25519 seed; when set it is the key and key_file is not used
    # (every replica must sign with the same key).
    key_seed: SecretStr = SecretStr("")
    # A checkpoint is signed once this many events are unsigned, or this long after the
    # last one while events are waiting.
    checkpoint_every: int = Field(1000, ge=1)
    checkpoint_interval_s: float = Field(10.0, gt=0)


class OidcSettings(BaseModel):
    """The console's OpenID Connect sign-in (authorization code with PKCE)."""

    model_config = ConfigDict(extra="forbid")

    # The IdP's issuer URL; its /.well-known/openid-configuration is read at sign-in.
    issuer: str
    client_id: str
    client_secret: SecretStr = SecretStr("")  # empty: a public client (PKCE alone)
    scopes: str = "openid profile email"
    # The ID token claim holding the user's groups or roles, and which values map to the
    # admin policy's roles; a user with neither is refused.
    roles_claim: str = "groups"
    admin_values: list[str] = Field(default_factory=lambda: ["tacgw-admins"])
    auditor_values: list[str] = Field(default_factory=lambda: ["tacgw-auditors"])


class ConsoleSettings(BaseModel):
    """The web console at /console (gateway/console)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    # A session ends this long after sign-in, whatever is done with it.
    session_ttl_s: int = Field(8 * 3600, ge=60, le=7 * 86400)
    # Per client address, on the sign-in form (slowapi, like the token endpoint).
    sign_in_rate_limit: str = "10/minute"
    # Local accounts (`tac-gateway admin create`); off when an IdP alone should be used.
    local_accounts: bool = True
    oidc: OidcSettings | None = None

    @field_validator("sign_in_rate_limit")
    @classmethod
    def _rate(cls, value: str) -> str:
        try:
            parse_many(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a rate; use e.g. '10/minute'") from None
        return value


class Settings(BaseSettings):
    """Everything the gateway reads at start; passed into `create_app`, never read globally."""

    model_config = SettingsConfigDict(
        env_prefix="TACGW_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    dev_mode: bool = False
    config_file: Path | None = None

    database_url: str = "sqlite+aiosqlite:///./var/tacgw.db"
    # `serve` migrates first on a laptop; replicas set it false and migrate once (a Job).
    migrate_on_start: bool = True
    # Audit rows are synced to disk before a response starts; FULL makes that true on SQLite.
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"
    # PostgreSQL connections the request path keeps per process (trust reads, audit
    # batches), with no overflow: past them a request waits for one instead of opening one
    # that is closed again on return. With 10 + 10 overflow, 64 concurrent callers spent
    # 1.33 ms CPU per request reconnecting (454 req/s); with 20 + 0, 0.88 ms (1,054 req/s)
    # (docs/performance.md). Size it with PostgreSQL's max_connections: replicas x workers x this.
    database_pool_size: int = Field(20, ge=1, le=1000)

    issuer: str = "http://127.0.0.1:8080"
    audience: str = "tac-gateway"
    token_ttl_s: int = Field(900, ge=60, le=86400)
    # Keys of installs from before keys lived in the database: imported on first start.
    signing_key_file: Path = Path("./var/signing-key.pem")
    # Seals the private signing keys in the database (AES-256-GCM via HKDF); required
    # outside dev mode. Changing it makes the stored keys unreadable: rotate instead.
    key_encryption_key: SecretStr = SecretStr("")
    # Every replica re-reads the signing keys this often, and on an unknown kid at most
    # once per `key_refresh_min_s`.
    key_reload_s: float = Field(60.0, gt=0)
    key_refresh_min_s: float = Field(5.0, ge=0)
    federated_issuers: list[FederatedIssuer] = Field(default_factory=list)
    # RFC 9449 proofs: accepted for this long after their `iat` (and this far ahead of the
    # clock); their `jti` is remembered for that window (Redis when rate_limit_storage
    # is Redis, so that every replica sees it; memory otherwise).
    dpop_max_age_s: int = Field(60, ge=5, le=600)

    policy_engine: Literal["embedded", "opa"] = "embedded"
    policy_dir: Path = Field(default_factory=packaged_policies)
    opa_url: str = "http://127.0.0.1:8181"
    policy_timeout_s: float = Field(1.0, gt=0)

    # The catalog is re-read at most this often, so CLI changes show up without a restart.
    catalog_ttl_s: float = Field(5.0, ge=0)

    rate_limit: str = "600/minute"
    rate_limit_storage: str = "memory://"
    # Per-tier limits over the policy data's (docs/operators.md, "Limits and budgets").
    tier_limits: dict[str, TierLimits] = Field(default_factory=dict)
    # A replica that dies mid-request cannot release its in-flight slot; the slot lapses
    # after this long. Longer than the longest response you serve.
    in_flight_ttl_s: float = Field(900.0, ge=1)
    # Usage per organization, model and day is written to the database this often.
    usage_flush_s: float = Field(5.0, gt=0)
    token_endpoint_rate_limit: str = "30/minute"

    # Transport limits on every route (gateway/api/hardening.py): the body's size, the
    # number and total size of request headers, and how long the body may take to arrive.
    max_body_bytes: int = Field(1_048_576, ge=1024)
    # A `Server-Timing` header with each pipeline stage's duration on /v1 model calls
    # (docs/performance.md). Off by default: it tells callers how long the stages took.
    server_timing: bool = False
    max_headers: int = Field(100, ge=10, le=1000)
    max_header_bytes: int = Field(32_768, ge=4096, le=1_048_576)
    request_body_timeout_s: float = Field(30.0, gt=0, le=3600)
    # uvicorn's own limits (`tac-gateway serve`): idle keep-alive connections are closed
    # after this long; at most this many connections and tasks at once (0: no limit).
    keep_alive_timeout_s: float = Field(5.0, gt=0, le=300)
    max_connections: int = Field(0, ge=0)
    # The interactive /docs page; /openapi.json is always served.
    api_docs: bool = False
    upstream: UpstreamSettings = Field(default_factory=UpstreamSettings)
    screening: ScreeningSettings = Field(default_factory=ScreeningSettings)
    verification: VerificationSettings = Field(default_factory=VerificationSettings)
    # The upstream bearer for targets without a credential of their own (see
    # docs/operators.md); the caller's own credentials never reach an upstream.
    upstream_api_key: SecretStr = SecretStr("")
    audit_log: AuditLogSettings = Field(default_factory=AuditLogSettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        # The request path is async end to end; a sync driver would block the event loop.
        if value.startswith("sqlite:///"):
            return value.replace("sqlite:///", "sqlite+aiosqlite:///", 1)
        if value.startswith(("postgresql://", "postgres://")):
            return "postgresql+asyncpg://" + value.split("://", 1)[1]
        return value

    # Field validators rather than one model validator, so that every bad field is reported
    # in the same error instead of one at a time.
    @field_validator("upstream_api_key")
    @classmethod
    def _no_placeholder_key(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        key = value.get_secret_value()
        if key and key.lower() in PLACEHOLDER_SECRETS and not info.data.get("dev_mode"):
            raise ValueError("is a placeholder; set a real key (or leave empty) outside dev mode")
        return value

    @field_validator("key_encryption_key")
    @classmethod
    def _real_kek(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        kek = value.get_secret_value()
        if info.data.get("dev_mode") or not kek:
            # Empty is refused when the keys are first needed (serve), not here: the admin
            # commands never touch signing keys and must not need the KEK.
            return value
        if kek.lower() in PLACEHOLDER_SECRETS or len(kek) < 32:
            raise ValueError(
                "is a placeholder or shorter than 32 characters; generate one with "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
            )
        return value

    @field_validator("issuer")
    @classmethod
    def _https_issuer(cls, value: str, info: ValidationInfo) -> str:
        # The scheme is case-insensitive (RFC 3986 §3.1): "HTTP://" is plain http too.
        if (
            urlsplit(value).scheme.lower() == "http"
            and not _is_loopback(value)
            and not info.data.get("dev_mode")
        ):
            raise ValueError("must be https outside dev mode (http is accepted on loopback only)")
        return value.rstrip("/")

    @field_validator("federated_issuers")
    @classmethod
    def _https_idps(
        cls, value: list[FederatedIssuer], info: ValidationInfo
    ) -> list[FederatedIssuer]:
        # An IdP's keys fetched over plain http could be swapped in transit: every token
        # it "signs" would verify. Loopback (tests, a sidecar) and dev mode excepted.
        if info.data.get("dev_mode"):
            return value
        for idp in value:
            for url in (idp.issuer, idp.discovery_url, idp.jwks_uri):
                if url and urlsplit(url).scheme.lower() != "https" and not _is_loopback(url):
                    raise ValueError(f"{url} must be https outside dev mode")
        return value

    @field_validator("verification")
    @classmethod
    def _no_override_in_production(
        cls, value: VerificationSettings, info: ValidationInfo
    ) -> VerificationSettings:
        # Redirecting domain proof to another host would let anyone "prove" any domain.
        if value.https_base_override and not info.data.get("dev_mode"):
            raise ValueError("https_base_override is for tests; it needs dev_mode")
        return value

    @field_validator("rate_limit", "token_endpoint_rate_limit")
    @classmethod
    def _rate(cls, value: str) -> str:
        # Parsed here, with the library that enforces it, so a typo is listed at start with
        # the other bad settings instead of failing the first request or the app's start.
        try:
            items = parse_many(value)
        except ValueError:
            raise ValueError(
                f"{value!r} is not a rate; use e.g. '600/minute' or '10/second;600/hour'"
            ) from None
        if any(item.amount < 1 for item in items):
            raise ValueError(f"{value!r} allows no request at all; each rate must be at least 1")
        return value

    @field_validator("rate_limit_storage")
    @classmethod
    def _limits_storage(cls, value: str) -> str:
        return check_limits_storage(value)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Precedence: explicit arguments, then environment, then the YAML file.
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _yaml_path(init_settings)
        if path is not None:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=path))
        return tuple(sources)


def audit_log_origin(settings: Settings) -> str:
    """The log origin: as configured, or the issuer's host followed by /audit."""
    if settings.audit_log.origin:
        return settings.audit_log.origin
    return f"{urlsplit(settings.issuer).netloc}/audit"


def _yaml_path(init_settings: PydanticBaseSettingsSource) -> Path | None:
    import os

    explicit: Any = init_settings().get("config_file")
    raw = explicit or os.environ.get("TACGW_CONFIG_FILE")
    if not raw:
        return None
    path = Path(raw)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    # Fail early with a readable message rather than deep inside pydantic.
    yaml.safe_load(path.read_text())
    return path


def _is_loopback(url: str) -> bool:
    # urlsplit, not string splitting: "http://127.0.0.1:80@evil.example" is evil.example.
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return False
    return host in {"127.0.0.1", "localhost", "::1"}


def check_limits_storage(uri: str) -> str:
    """The `limits` storage URI, if both its sync and async storages exist and can load.

    The token endpoint (slowapi) uses the sync storage and the pipeline the async one
    (`async+` prefix), so both must exist. Only the registry and the installed packages
    are consulted: nothing connects, since settings are checked before anything starts.
    """
    schemes = limits.storage.SCHEMES  # filled by importing both storage packages
    kind = urlsplit(uri).scheme.removeprefix("async+")
    usable = sorted(s for s in schemes if not s.startswith("async+") and f"async+{s}" in schemes)
    if kind not in usable:
        raise ValueError(
            f"unknown rate limit storage {kind + '://' if kind else repr(uri)};"
            f" use one of: {', '.join(k + '://' for k in usable)}"
        )
    for storage in (schemes[kind], schemes[f"async+{kind}"]):
        wanted = getattr(storage, "DEPENDENCIES", [])  # set on each storage class
        names = [n.split(".")[0] for n in (wanted if isinstance(wanted, list) else list(wanted))]
        # Any one of the listed drivers will do (redis or coredis for async redis), except
        # that valkey:// URLs are served by the valkey package only.
        if kind.startswith("valkey"):
            names = ["valkey"]
        if names and not any(importlib.util.find_spec(n) for n in names):
            raise ValueError(f"{kind}:// needs the Python package {' or '.join(names)}")
    return uri
