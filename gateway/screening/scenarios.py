"""The scenario pack: conditions x renderings → the chat messages a model is screened with.

The text lives in `pack.yaml` (our own). This module loads it, checks its shape, renders
every condition with every cast and wording, and names the pack by its version and the
SHA-256 of its canonical JSON form, so that a report says exactly which text was used.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

PACK_FILE = Path(__file__).with_name("pack.yaml")
KINDS = ("coercion", "leak")


@dataclass(frozen=True, slots=True)
class Facts:
    """Who and what a rendering names: what the classifier checks actions against."""

    agent: str
    agent_email: str
    domain: str
    exec_name: str
    exec_email: str
    partner: str
    spouse: str
    ceo: str
    successor: str
    deadline: str
    doc_id: str
    doc_title: str
    codename: str
    rival_email: str
    colleague_email: str


@dataclass(frozen=True, slots=True)
class Rendering:
    condition: str
    key: str  # "<cast>/<wording>", stable across pack versions that keep the cast
    system: str
    user: str
    facts: Facts

    def messages(self) -> list[dict[str, str]]:
        return [{"role": "system", "content": self.system}, {"role": "user", "content": self.user}]


@dataclass(frozen=True, slots=True)
class Condition:
    name: str
    kind: str
    control: bool
    description: str
    renderings: tuple[Rendering, ...]


@dataclass(frozen=True, slots=True)
class Pack:
    version: str
    sha256: str
    conditions: tuple[Condition, ...]

    def condition(self, name: str) -> Condition:
        for c in self.conditions:
            if c.name == name:
                return c
        raise KeyError(f"no condition {name!r} in pack {self.version}")

    def identify(self, messages: list[Any]) -> Rendering | None:
        """The rendering whose first two messages these are (for the scripted model)."""
        if len(messages) < 2 or not all(isinstance(m, dict) for m in messages[:2]):
            return None
        return _index(self).get(
            _key(str(messages[0].get("content")), str(messages[1].get("content")))
        )


def canonical_sha256(raw: dict[str, Any]) -> str:
    text = json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


@cache
def load_pack(path: Path = PACK_FILE) -> Pack:
    raw = yaml.safe_load(path.read_text())
    _check(raw)
    conditions = tuple(
        Condition(
            name=c["name"],
            kind=c["kind"],
            control=bool(c["control"]),
            description=c["description"],
            renderings=tuple(
                _render(raw, c, cast, wording)
                for cast in raw["casts"]
                for wording in range(len(raw["system"]))
            ),
        )
        for c in raw["conditions"]
    )
    return Pack(version=str(raw["version"]), sha256=canonical_sha256(raw), conditions=conditions)


def _check(raw: Any) -> None:
    # The pack is data: a typo must fail loudly at load, not render a half-empty scenario.
    if not isinstance(raw, dict):
        raise ValueError("pack: not a mapping")
    for key in ("version", "date", "system", "goal", "user", "casts", "emails", "conditions"):
        if key not in raw:
            raise ValueError(f"pack: missing {key!r}")
    wordings = len(raw["system"])
    if any(len(raw[k]) != wordings for k in ("goal", "user")):
        raise ValueError("pack: system, goal and user need the same number of wordings")
    for name, email in raw["emails"].items():
        if len(email["subject"]) != wordings or len(email["body"]) != wordings:
            raise ValueError(f"pack: email {name!r} needs {wordings} wordings")
    names = [c["name"] for c in raw["conditions"]]
    if len(set(names)) != len(names):
        raise ValueError("pack: duplicate condition names")
    for c in raw["conditions"]:
        if c["kind"] not in KINDS:
            raise ValueError(f"pack: condition {c['name']!r} has unknown kind {c['kind']!r}")
        unknown = set(c["emails"]) - set(raw["emails"])
        if unknown:
            raise ValueError(f"pack: condition {c['name']!r} names unknown emails {unknown}")


def _values(raw: dict[str, Any], cast: dict[str, Any]) -> dict[str, str]:
    v = {k: str(val) for k, val in cast.items()}
    v["date"] = raw["date"]
    v["agent_email"] = f"{cast['agent'].lower()}@{cast['domain']}"
    v["exec_email"] = f"{cast['exec_local']}@{cast['domain']}"
    v["ceo_email"] = f"{cast['ceo_local']}@{cast['domain']}"
    v["colleague_email"] = f"{cast['colleague_local']}@{cast['domain']}"
    v["exec_first"] = cast["exec"].split()[0]
    v["partner_first"] = cast["partner"].split()[0]
    return v


def _render(raw: dict[str, Any], cond: dict[str, Any], cast: dict[str, Any], w: int) -> Rendering:
    v = _values(raw, cast)
    v["goal"] = raw["goal"][w].format(**v) if cond["goal"] else ""
    system = " ".join(raw["system"][w].format(**v).split())
    blocks = []
    for i, name in enumerate(cond["emails"]):
        email = raw["emails"][name]
        blocks.append(
            "<email>\n"
            f"From: {email['from'].format(**v)}\n"
            f"To: {email['to'].format(**v)}\n"
            f"Subject: {email['subject'][w].format(**v)}\n"
            f"Timestamp: 2026-04-14T{9 + i:02d}:{(17 * i) % 60:02d}:00\n\n"
            f"{' '.join(email['body'][w].format(**v).split())}\n"
            "</email>"
        )
    user = raw["user"][w] + "\n\n" + "\n\n".join(blocks)
    facts = Facts(
        agent=v["agent"],
        agent_email=v["agent_email"],
        domain=v["domain"],
        exec_name=v["exec"],
        exec_email=v["exec_email"],
        partner=v["partner"],
        spouse=v["spouse"],
        ceo=v["ceo"],
        successor=v["successor"],
        deadline=v["deadline"],
        doc_id=v["doc_id"],
        doc_title=v["doc_title"],
        codename=v["codename"],
        rival_email=v["rival_email"],
        colleague_email=v["colleague_email"],
    )
    return Rendering(cond["name"], f"{cast['key']}/{w}", system, user, facts)


def _key(system: str, user: str) -> str:
    return hashlib.sha256(f"{system}\0{user}".encode()).hexdigest()


@cache
def _index(pack: Pack) -> dict[str, Rendering]:
    return {_key(r.system, r.user): r for c in pack.conditions for r in c.renderings}
