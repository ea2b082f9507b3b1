"""Domain proof: is the challenge token published where only the domain's owner can put it?

Two methods. `dns`: a TXT record at `_tacgw-challenge.<domain>`, asked of every configured
resolver (dnspython), each of which must see it. `https`: the file
`https://<domain>/.well-known/tacgw-challenge` (httpx, certificate verified, no redirects).
Either way the answer is kept verbatim (bounded) as the evidence of the check.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from enum import StrEnum

import dns.asyncresolver
import dns.exception
import dns.resolver
import httpx

from gateway.settings import VerificationSettings, parse_resolver

RECORD_PREFIX = "_tacgw-challenge"
WELL_KNOWN_PATH = "/.well-known/tacgw-challenge"
MAX_EVIDENCE = 4000  # characters kept per check; an answer is short unless hostile
MAX_BODY = 1024  # bytes read from the well-known file


class Method(StrEnum):
    DNS = "dns"
    HTTPS = "https"


class Result(StrEnum):
    PASSED = "passed"
    FAILED = "failed"  # the answer came and did not hold the token
    ERROR = "error"  # no answer (timeout, refused, TLS failure): try again later


@dataclass(frozen=True, slots=True)
class ProofOutcome:
    result: Result
    evidence: str


def new_token() -> str:
    return secrets.token_urlsafe(32)


def record_name(domain: str) -> str:
    return f"{RECORD_PREFIX}.{domain}"


def instructions(method: Method, domain: str, token: str) -> str:
    """What the applicant must publish, in one sentence."""
    if method is Method.DNS:
        return f'Publish a DNS TXT record at {record_name(domain)} with the value "{token}".'
    return (
        f"Serve https://{domain}{WELL_KNOWN_PATH} with the body {token} "
        "(HTTP 200, valid certificate, no redirect)."
    )


class ProofChecker:
    def __init__(self, settings: VerificationSettings) -> None:
        self._settings = settings
        self._resolvers = [parse_resolver(r) for r in settings.resolvers]

    async def check(self, *, method: Method, domain: str, token: str) -> ProofOutcome:
        if method is Method.DNS:
            return await self._check_dns(domain, token)
        return await self._check_https(domain, token)

    async def _check_dns(self, domain: str, token: str) -> ProofOutcome:
        lines, outcomes = [], []
        for ip, port in self._resolvers:
            outcome, said = await self._ask(ip, port, record_name(domain), token)
            outcomes.append(outcome)
            lines.append(f"{ip}:{port} {said}")
        if all(o is Result.PASSED for o in outcomes):
            result = Result.PASSED
        elif Result.FAILED in outcomes:
            result = Result.FAILED
        else:
            result = Result.ERROR
        return ProofOutcome(result, _bounded("\n".join(lines)))

    async def _ask(self, ip: str, port: int, name: str, token: str) -> tuple[Result, str]:
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [ip]
        resolver.port = port
        resolver.timeout = resolver.lifetime = self._settings.dns_timeout_s
        try:
            answer = await resolver.resolve(name, "TXT", raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            return Result.FAILED, f"NXDOMAIN {name}"
        except dns.exception.Timeout:
            return Result.ERROR, "timeout"
        except dns.resolver.NoNameservers as exc:
            return Result.ERROR, f"no usable answer ({exc})"
        except dns.exception.DNSException as exc:
            return Result.ERROR, f"{type(exc).__name__}"
        if answer.rrset is None:
            return Result.FAILED, f"no TXT record at {name}"
        # A TXT value longer than 255 bytes arrives as several strings: they are one value.
        values = [b"".join(rdata.strings).decode("utf-8", "replace") for rdata in answer.rrset]
        found = any(_same(v, token) for v in values)
        return (Result.PASSED if found else Result.FAILED), answer.rrset.to_text()

    async def _check_https(self, domain: str, token: str) -> ProofOutcome:
        url = f"https://{domain}{WELL_KNOWN_PATH}"
        headers = {"accept": "text/plain"}
        override = self._settings.https_base_override
        if override:
            url = override.rstrip("/") + WELL_KNOWN_PATH
            headers["host"] = domain
        try:
            async with (
                httpx.AsyncClient(
                    timeout=self._settings.https_timeout_s, follow_redirects=False, trust_env=False
                ) as client,
                client.stream("GET", url, headers=headers) as reply,
            ):
                body = await _read_capped(reply, MAX_BODY)
        except httpx.HTTPError as exc:
            return ProofOutcome(Result.ERROR, f"GET {url}: {type(exc).__name__}")
        text = body.decode("utf-8", "replace")
        said = f"GET {url} → {reply.status_code}\n{text}"
        found = reply.status_code == 200 and _same(text, token)
        return ProofOutcome(Result.PASSED if found else Result.FAILED, _bounded(said))


async def _read_capped(reply: httpx.Response, limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in reply.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)[:limit]


def _same(published: str, token: str) -> bool:
    # Bytes: compare_digest refuses non-ASCII str, and a hostile record may hold any text.
    return hmac.compare_digest(published.strip().encode(), token.encode())


def _bounded(text: str) -> str:
    return text if len(text) <= MAX_EVIDENCE else text[:MAX_EVIDENCE] + "…"
