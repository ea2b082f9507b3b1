"""Where an applicant says it works: the 16 US critical-infrastructure sectors (CISA,
PPD-21) and ISO 3166-1 alpha-2 countries. Both lists ship with the code; nothing is fetched.
"""

from __future__ import annotations

import iso3166

from gateway.errors import BadRequest
from gateway.reasons import Reason

# Slugs of CISA's sector names, in CISA's order.
SECTORS: tuple[str, ...] = (
    "chemical",
    "commercial-facilities",
    "communications",
    "critical-manufacturing",
    "dams",
    "defense-industrial-base",
    "emergency-services",
    "energy",
    "financial-services",
    "food-and-agriculture",
    "government-facilities",
    "healthcare-and-public-health",
    "information-technology",
    "nuclear-reactors-materials-and-waste",
    "transportation-systems",
    "water-and-wastewater-systems",
)


def check_sector(raw: str) -> str:
    sector = raw.strip().lower()
    if sector not in SECTORS:
        raise BadRequest(
            Reason.SECTOR_UNKNOWN,
            f"Unknown sector {raw[:60]!r}; expected one of: {', '.join(SECTORS)}.",
        )
    return sector


def check_country(raw: str) -> str:
    code = raw.strip().upper()
    if len(code) != 2 or code not in iso3166.countries_by_alpha2:
        raise BadRequest(
            Reason.COUNTRY_UNKNOWN,
            f"Unknown country {raw[:10]!r}; give an ISO 3166-1 alpha-2 code such as 'US' or 'DE'.",
        )
    return code
