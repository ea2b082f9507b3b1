"""Domain normalisation: one accepted form per domain, each kind of bad input refused."""

from __future__ import annotations

import pytest

from gateway.errors import BadRequest
from gateway.reasons import Reason
from gateway.trust.domains import normalise_domain
from gateway.trust.sectors import SECTORS, check_country, check_sector


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Example.COM", "example.com"),
        ("  grid.example.org.  ", "grid.example.org"),
        ("bücher.de", "xn--bcher-kva.de"),
        ("xn--bcher-kva.de", "xn--bcher-kva.de"),
        ("ÅSA.se", "xn--sa-xia.se"),
        ("grid.energy.gov", "grid.energy.gov"),
        ("water.co.uk", "water.co.uk"),
    ],
)
def test_accepted_domains_are_normalised(raw: str, expected: str) -> None:
    """Case, surrounding space, a trailing dot and U-labels all give the one A-label form."""
    assert normalise_domain(raw) == expected


@pytest.mark.parametrize(
    ("raw", "reason", "words"),
    [
        ("", Reason.DOMAIN_INVALID, "empty"),
        ("*.example.com", Reason.DOMAIN_WILDCARD, "wildcard"),
        ("192.0.2.7", Reason.DOMAIN_IS_IP, "IP address"),
        ("[2001:db8::1]", Reason.DOMAIN_IS_IP, "IP address"),
        ("2001:db8::1", Reason.DOMAIN_IS_IP, "IP address"),
        ("10.0.0", Reason.DOMAIN_IS_IP, "IP address"),
        ("com", Reason.DOMAIN_PUBLIC_SUFFIX, "top-level domain"),
        ("co.uk", Reason.DOMAIN_PUBLIC_SUFFIX, "public suffix"),
        ("blogspot.com", Reason.DOMAIN_PUBLIC_SUFFIX, "public suffix"),
        ("grid.notatld", Reason.DOMAIN_INVALID, "known top-level domain"),
        ("https://example.com/", Reason.DOMAIN_INVALID, "bare domain"),
        ("example.com:443", Reason.DOMAIN_INVALID, "bare domain"),
        ("exa mple.com", Reason.DOMAIN_INVALID, "bare domain"),
        ("xn--zz.com", Reason.DOMAIN_INVALID, "internationalised"),
        ("a\u200db.com", Reason.DOMAIN_INVALID, "internationalised"),
        ("-grid.com", Reason.DOMAIN_INVALID, "internationalised"),
        ("a..com", Reason.DOMAIN_INVALID, "internationalised"),
        ("x" * 64 + ".com", Reason.DOMAIN_INVALID, "internationalised"),
        (".".join(["a" * 60] * 5) + ".com", Reason.DOMAIN_INVALID, ""),
        ("a" * 2000 + ".com", Reason.FIELD_INVALID, "longer than 253"),
    ],
)
def test_bad_domains_are_refused_with_reason(raw: str, reason: Reason, words: str) -> None:
    """Each bad domain gets its own reason code and a message saying what is wrong."""
    with pytest.raises(BadRequest) as err:
        normalise_domain(raw)
    assert err.value.reason == reason
    assert words in err.value.message


def test_sixteen_sectors_and_iso_countries() -> None:
    """The CISA sector list has 16 entries; countries are ISO 3166-1 alpha-2, any case."""
    assert len(SECTORS) == len(set(SECTORS)) == 16
    assert check_sector(" Energy ") == "energy"
    assert check_country("de") == "DE"
    for bad in ("", "ZZ", "USA", "U"):
        with pytest.raises(BadRequest) as err:
            check_country(bad)
        assert err.value.reason == Reason.COUNTRY_UNKNOWN
    with pytest.raises(BadRequest) as err:
        check_sector("crypto")
    assert (
        err.value.reason == Reason.SECTOR_UNKNOWN
        and "water-and-wastewater-systems" in err.value.message
    )
