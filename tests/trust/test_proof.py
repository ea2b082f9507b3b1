"""Domain proof against a real DNS server and a real web server on loopback."""

from __future__ import annotations

from gateway.settings import VerificationSettings
from gateway.trust.proof import Method, ProofChecker, Result, instructions, new_token
from tests.support.proof_servers import LoopbackDns, LoopbackWeb, run_dns

DOMAIN = "grid-defenders.com"
NAME = f"_tacgw-challenge.{DOMAIN}"


def _checker(*resolvers: str, **kw: object) -> ProofChecker:
    return ProofChecker(VerificationSettings(resolvers=list(resolvers), **kw))  # type: ignore[arg-type]


async def test_dns_token_published_passes(loopback_dns: LoopbackDns) -> None:
    """The TXT record holding the token passes; the resolver's answer is the evidence."""
    token = new_token()
    loopback_dns.txt[NAME] = ["unrelated=1", token]
    outcome = await _checker(loopback_dns.address).check(
        method=Method.DNS, domain=DOMAIN, token=token
    )
    assert outcome.result is Result.PASSED
    assert loopback_dns.address in outcome.evidence and token in outcome.evidence
    assert loopback_dns.questions == [NAME]


async def test_dns_wrong_or_missing_record_fails(loopback_dns: LoopbackDns) -> None:
    """Another value, or no record at all (NXDOMAIN), fails and says what was seen."""
    checker = _checker(loopback_dns.address)
    loopback_dns.txt[NAME] = ["someone-elses-token"]
    wrong = await checker.check(method=Method.DNS, domain=DOMAIN, token=new_token())
    assert wrong.result is Result.FAILED and "someone-elses-token" in wrong.evidence

    missing = await checker.check(method=Method.DNS, domain="other-org.com", token=new_token())
    assert missing.result is Result.FAILED and "NXDOMAIN" in missing.evidence


async def test_long_txt_value_split_in_strings_is_one_value(loopback_dns: LoopbackDns) -> None:
    """A value over 255 bytes travels as several strings; they are joined before comparing."""
    token = "t" * 300
    loopback_dns.txt[NAME] = [token]
    outcome = await _checker(loopback_dns.address).check(
        method=Method.DNS, domain=DOMAIN, token=token
    )
    assert outcome.result is Result.PASSED


async def test_every_resolver_must_see_the_token(loopback_dns: LoopbackDns) -> None:
    """With two resolvers, one that lacks the record fails the check."""
    token = new_token()
    loopback_dns.txt[NAME] = [token]
    with run_dns() as other:
        other.txt[NAME] = ["stale"]
        outcome = await _checker(loopback_dns.address, other.address).check(
            method=Method.DNS, domain=DOMAIN, token=token
        )
        assert outcome.result is Result.FAILED
        assert "stale" in outcome.evidence and token in outcome.evidence
        other.txt[NAME] = [token]
        agreed = await _checker(loopback_dns.address, other.address).check(
            method=Method.DNS, domain=DOMAIN, token=token
        )
        assert agreed.result is Result.PASSED


async def test_unreachable_resolver_is_an_error(silent_udp_port: int) -> None:
    """A resolver that never answers gives `error` (retry later), not `failed`."""
    outcome = await _checker(f"127.0.0.1:{silent_udp_port}", dns_timeout_s=0.3).check(
        method=Method.DNS, domain=DOMAIN, token=new_token()
    )
    assert outcome.result is Result.ERROR and "timeout" in outcome.evidence


async def test_https_file_passes_and_fails(loopback_web: LoopbackWeb) -> None:
    """The well-known file with the token passes; another body or status fails."""
    checker = _checker("127.0.0.1:53", https_base_override=loopback_web.base_url)
    token = new_token()
    loopback_web.files[DOMAIN] = token + "\n"
    passed = await checker.check(method=Method.HTTPS, domain=DOMAIN, token=token)
    assert passed.result is Result.PASSED and "200" in passed.evidence

    loopback_web.status = 500
    assert (await checker.check(method=Method.HTTPS, domain=DOMAIN, token=token)).result is (
        Result.FAILED
    )
    missing = await checker.check(method=Method.HTTPS, domain="other-org.com", token=token)
    assert missing.result is Result.FAILED and "404" in missing.evidence


async def test_https_unreachable_is_an_error(silent_udp_port: int) -> None:
    """Nothing listening: an error with the exception's name, never a pass."""
    checker = _checker("127.0.0.1:53", https_base_override=f"http://127.0.0.1:{silent_udp_port}")
    outcome = await checker.check(method=Method.HTTPS, domain=DOMAIN, token=new_token())
    assert outcome.result is Result.ERROR and "ConnectError" in outcome.evidence


def test_instructions_name_the_record_and_the_file() -> None:
    """What the applicant is told to publish names exactly where the check looks."""
    assert NAME in instructions(Method.DNS, DOMAIN, "tok")
    assert f"https://{DOMAIN}/.well-known/tacgw-challenge" in instructions(
        Method.HTTPS, DOMAIN, "tok"
    )
