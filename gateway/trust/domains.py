"""An applicant's domain: normalised to its A-label form, or refused with a reason.

The public-suffix list is the snapshot that ships inside `publicsuffixlist` (its
updater, the only code in it that fetches, is never imported), so a check never leaves
the machine and gives the same answer on every replica.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache

import idna
from publicsuffixlist import PublicSuffixList

from gateway.errors import BadRequest
from gateway.reasons import Reason

MAX_DOMAIN = 253  # RFC 1035 §2.3.4, without the trailing dot
MAX_LABEL = 63
# After IDNA encoding every label is LDH: letters, digits, hyphen, not at either end.
_LDH_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_NOT_A_HOST = re.compile(r"[/:@?#\s\\]")


@lru_cache(maxsize=1)
def _psl() -> PublicSuffixList:
    # The full list (ICANN and private sections): a suffix anyone can register under
    # (co.uk, blogspot.com) is nobody's domain. Unknown TLDs have no suffix (refused).
    return PublicSuffixList(accept_unknown=False)


@lru_cache(maxsize=1)
def domain_pattern() -> str:
    """A regular expression for the OpenAPI document: LDH labels under a top-level domain
    the shipped list knows, where a name directly under it is registrable (TLDs with a
    wildcard rule such as `*.ck` are left out). A name it matches may still be a public
    suffix itself (`co.uk`); the operation says so with `domain_public_suffix`."""
    import importlib.resources

    text = importlib.resources.files("publicsuffixlist").joinpath("public_suffix_list.dat")
    rules = [
        line.strip()
        for line in text.read_text(encoding="utf-8")
        .split("// ===END ICANN DOMAINS===")[0]
        .splitlines()
        if line.strip() and not line.startswith("//")
    ]
    wildcard = {r[2:] for r in rules if r.startswith("*.") and "." not in r[2:]}
    tlds = sorted(r for r in rules if re.fullmatch(r"[a-z]{2,24}", r) and r not in wildcard)
    label = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
    return rf"^({label}\.)+({'|'.join(tlds)})$"


def normalise_domain(raw: str) -> str:
    """The domain in lower-case A-label form, or BadRequest saying what is wrong."""
    text = raw.strip()
    shown = text[:80]
    if not text:
        raise _invalid(Reason.DOMAIN_INVALID, "The domain is empty.")
    if len(text) > 4 * MAX_DOMAIN:  # bound the work before IDNA on hostile input
        raise _invalid(Reason.FIELD_INVALID, f"The domain is longer than {MAX_DOMAIN} characters.")
    if "*" in text:
        raise _invalid(
            Reason.DOMAIN_WILDCARD, f"{shown!r} is a wildcard; give the one domain you control."
        )
    if _is_ip(text):
        raise _invalid(
            Reason.DOMAIN_IS_IP, f"{shown!r} is an IP address; give a domain name you control."
        )
    if _NOT_A_HOST.search(text):
        raise _invalid(
            Reason.DOMAIN_INVALID,
            f"{shown!r} is not a bare domain name (no scheme, path, port or spaces).",
        )
    text = text.removesuffix(".")
    try:
        domain = idna.encode(text, uts46=True).decode("ascii").lower()
    except (idna.IDNAError, UnicodeError) as exc:
        raise _invalid(
            Reason.DOMAIN_INVALID, f"{shown!r} is not a valid internationalised domain name: {exc}."
        ) from None
    _check_shape(domain, shown)
    psl = _psl()
    if psl.is_public(domain):
        raise _invalid(
            Reason.DOMAIN_PUBLIC_SUFFIX,
            f"{shown!r} is a public suffix (a TLD or registry zone), not an organization's domain.",
        )
    if psl.publicsuffix(domain) is None:
        raise _invalid(Reason.DOMAIN_INVALID, f"{shown!r} is not under a known top-level domain.")
    return domain


def _check_shape(domain: str, shown: str) -> None:
    if len(domain) > MAX_DOMAIN:
        raise _invalid(Reason.FIELD_INVALID, f"The domain is longer than {MAX_DOMAIN} characters.")
    labels = domain.split(".")
    if len(labels) < 2:
        raise _invalid(
            Reason.DOMAIN_PUBLIC_SUFFIX,
            f"{shown!r} is a bare top-level domain, not an organization's domain.",
        )
    for label in labels:
        if len(label) > MAX_LABEL:
            raise _invalid(
                Reason.DOMAIN_INVALID,
                f"A label of {shown!r} is longer than {MAX_LABEL} characters.",
            )
        if not _LDH_LABEL.match(label):
            raise _invalid(
                Reason.DOMAIN_INVALID,
                f"{shown!r} has an empty or invalid label {label[:20]!r}.",
            )
    if labels[-1].isdigit():
        raise _invalid(Reason.DOMAIN_IS_IP, f"{shown!r} looks like an IP address, not a domain.")


def _is_ip(text: str) -> bool:
    candidate = text.strip("[]").removesuffix(".")
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return False
    return True


def _invalid(reason: Reason, message: str) -> BadRequest:
    return BadRequest(reason, message)
