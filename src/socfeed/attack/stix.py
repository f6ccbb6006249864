"""Build the ATT&CK index from an Enterprise ATT&CK STIX bundle, and download such a bundle.

Reads both MITRE's STIX 2.0 bundles (the mitre/cti repository) and STIX 2.1 bundles (the
mitre-attack/attack-stix-data repository). Older bundles carry free-text detection advice
(``x_mitre_detection``) and data components linked to techniques by ``detects``
relationships. ATT&CK v18 and later link detection strategies to techniques instead, and
reach data components through the strategies' analytics.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import httpx
import platformdirs

from socfeed.attack.ids import TACTICS, Tactic
from socfeed.attack.index import (
    AttackDataError,
    AttackIndex,
    DataComponent,
    DetectionStrategy,
    Technique,
    clean_attack_text,
    summarize_description,
    technique_url,
)
from socfeed.errors import Location

log = logging.getLogger(__name__)

DEFAULT_BUNDLE_URL = (
    "https://raw.githubusercontent.com/mitre-attack/attack-stix-data/master/"
    "enterprise-attack/enterprise-attack.json"
)

_STIX_FIELDS = (
    "name",
    "tactics",
    "platforms",
    "summary",
    "detection",
    "detection_strategies",
    "data_components",
    "deprecated",
    "revoked",
    "url",
    "revoked_by",
)


class _Bundle:
    """The live objects of a bundle, by STIX id and by type."""

    def __init__(self, objects: Iterable[Mapping[str, Any]]) -> None:
        self.by_id: dict[str, Mapping[str, Any]] = {}
        self.by_type: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
        self.revoked_ids: set[str] = set()
        for obj in objects:
            self.by_id[obj["id"]] = obj
            self.by_type[obj["type"]].append(obj)
            if obj.get("revoked"):
                self.revoked_ids.add(obj["id"])

    def live(self, stix_type: str) -> list[Mapping[str, Any]]:
        """Return the objects of a type that are neither revoked nor deprecated."""
        return [obj for obj in self.by_type.get(stix_type, []) if _is_live(obj)]

    def relationships(self, relationship_type: str) -> list[Mapping[str, Any]]:
        return [
            rel
            for rel in self.live("relationship")
            if rel.get("relationship_type") == relationship_type
        ]


def _is_live(obj: Mapping[str, Any]) -> bool:
    return not obj.get("revoked") and not obj.get("x_mitre_deprecated")


def _mitre_id(obj: Mapping[str, Any]) -> str | None:
    for reference in obj.get("external_references", ()):
        if reference.get("source_name") == "mitre-attack" and reference.get("external_id"):
            return str(reference["external_id"])
    return None


def _mitre_url(obj: Mapping[str, Any]) -> str:
    for reference in obj.get("external_references", ()):
        if reference.get("source_name") == "mitre-attack" and reference.get("url"):
            return str(reference["url"])
    return ""


def read_stix_bundle(path: Path) -> dict[str, Any]:
    """Parse a STIX bundle file, raising AttackDataError if it is not a JSON bundle."""
    location = Location("attack", str(path))
    try:
        with path.open("rb") as stream:
            bundle = json.load(stream)
    except FileNotFoundError as exc:
        raise AttackDataError("STIX bundle not found", location) from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AttackDataError(f"unreadable STIX bundle: {exc}", location) from exc

    if not isinstance(bundle, dict) or bundle.get("type") != "bundle":
        raise AttackDataError("not a STIX bundle: the top level needs type 'bundle'", location)
    if not isinstance(bundle.get("objects"), list):
        raise AttackDataError("invalid STIX bundle: 'objects' is not a list", location)
    return bundle


def load_stix_bundle(path: Path, attack_version: str | None = None) -> AttackIndex:
    """Build an index from an Enterprise ATT&CK STIX bundle file.

    ``attack_version`` is used only when the bundle has no x-mitre-collection object to
    take the version from, as in the STIX 2.0 bundles of the mitre/cti repository.
    """
    bundle = read_stix_bundle(path)
    try:
        return index_from_stix_bundle(bundle, path.name, attack_version)
    except (KeyError, TypeError, AttributeError) as exc:
        reason = f"invalid STIX object ({type(exc).__name__}: {exc})"
        raise AttackDataError(reason, Location("attack", str(path))) from exc


def index_from_stix_bundle(
    bundle: Mapping[str, Any], source: str, attack_version: str | None = None
) -> AttackIndex:
    """Build an index from a parsed STIX bundle whose file name or URL is ``source``."""
    objects = _Bundle(bundle["objects"])
    version = _collection_version(objects) or attack_version
    if version is None:
        log.warning("STIX bundle %s has no x-mitre-collection version; recording 'unknown'", source)
        version = "unknown"

    tactics, order_source = _tactics_in_matrix_order(objects)
    techniques, revoked_by = _techniques(objects)

    described = f"ATT&CK {version} STIX bundle {source}"
    log.info(
        "built ATT&CK %s index from %s: %d techniques, %d revoked",
        version,
        source,
        len(techniques),
        len(revoked_by),
    )
    return AttackIndex(
        attack_version=version,
        tactics=tactics,
        techniques=techniques,
        revoked_by=revoked_by,
        tactic_order_source=order_source,
        field_sources=dict.fromkeys(_STIX_FIELDS, described),
        sources=({"name": source, "kind": "stix-bundle", "attack_version": version},),
        notice=_marking_statement(objects),
    )


def _techniques(objects: _Bundle) -> tuple[dict[str, Technique], dict[str, str]]:
    """Build every technique with an ATT&CK id, and the revoked-by map between them."""
    technique_ids = {
        obj["id"]: technique_id
        for obj in objects.by_type.get("attack-pattern", [])
        if (technique_id := _mitre_id(obj)) is not None
    }
    revoked_by = _revoked_by_map(objects, technique_ids)
    strategies = _detection_strategies(objects, technique_ids)
    components = _data_components(objects, technique_ids)

    techniques: dict[str, Technique] = {}
    for obj in objects.by_type.get("attack-pattern", []):
        technique_id = technique_ids.get(obj["id"])
        if technique_id is not None:
            techniques[technique_id] = _technique(
                obj,
                technique_id,
                revoked_by.get(technique_id),
                strategies.get(technique_id, []),
                components.get(technique_id, []),
            )
    return techniques, revoked_by


def _collection_version(objects: _Bundle) -> str | None:
    for collection in objects.by_type.get("x-mitre-collection", []):
        if collection.get("x_mitre_version"):
            return str(collection["x_mitre_version"])
    return None


def _marking_statement(objects: _Bundle) -> str:
    for marking in objects.by_type.get("marking-definition", []):
        statement = marking.get("definition", {}).get("statement")
        if statement:
            return str(statement)
    return ""


def _tactics_in_matrix_order(objects: _Bundle) -> tuple[tuple[Tactic, ...], str]:
    """Return the tactics in the Enterprise matrix's order and where that order came from."""
    by_stix_id: dict[str, Tactic] = {}
    for obj in objects.live("x-mitre-tactic"):
        tactic_id = _mitre_id(obj)
        if tactic_id is not None:
            by_stix_id[obj["id"]] = Tactic(tactic_id, obj["x_mitre_shortname"], obj["name"])

    matrix = _enterprise_matrix(objects)
    if matrix is not None:
        ordered = [by_stix_id[ref] for ref in matrix["tactic_refs"] if ref in by_stix_id]
        missing = [t for ref, t in by_stix_id.items() if ref not in matrix["tactic_refs"]]
        return tuple(ordered + sorted(missing, key=lambda t: t.id)), "matrix"

    known_order = {tactic.id: position for position, tactic in enumerate(TACTICS)}
    guessed = sorted(by_stix_id.values(), key=lambda t: (known_order.get(t.id, 99), t.id))
    return tuple(guessed), "guess: no x-mitre-matrix object; socfeed.attack.ids.TACTICS order"


def _enterprise_matrix(objects: _Bundle) -> Mapping[str, Any] | None:
    matrices = objects.live("x-mitre-matrix")
    for matrix in matrices:
        if _mitre_id(matrix) == "enterprise-attack":
            return matrix
    return matrices[0] if len(matrices) == 1 else None


def _revoked_by_map(objects: _Bundle, technique_ids: Mapping[str, str]) -> dict[str, str]:
    """Map each revoked technique id to the id that replaced it, from revoked-by relationships."""
    revoked_by: dict[str, str] = {}
    for rel in objects.relationships("revoked-by"):
        old = technique_ids.get(rel["source_ref"])
        new = technique_ids.get(rel["target_ref"])
        if old is not None and new is not None and old != new:
            revoked_by[old] = new
    return revoked_by


def _detection_strategies(
    objects: _Bundle, technique_ids: Mapping[str, str]
) -> dict[str, list[DetectionStrategy]]:
    found: dict[str, list[DetectionStrategy]] = defaultdict(list)
    for rel in objects.relationships("detects"):
        strategy = objects.by_id.get(rel["source_ref"])
        technique_id = technique_ids.get(rel["target_ref"])
        if strategy is None or technique_id is None:
            continue
        if strategy["type"] != "x-mitre-detection-strategy" or not _is_live(strategy):
            continue
        entry = DetectionStrategy(_mitre_id(strategy) or "", strategy["name"])
        if entry not in found[technique_id]:
            found[technique_id].append(entry)
    return {key: sorted(value, key=lambda s: s.id) for key, value in found.items()}


def _data_components(
    objects: _Bundle, technique_ids: Mapping[str, str]
) -> dict[str, list[DataComponent]]:
    """Collect each technique's data components from both ATT&CK detection models."""
    found: dict[str, set[DataComponent]] = defaultdict(set)
    for rel in objects.relationships("detects"):
        source = objects.by_id.get(rel["source_ref"])
        technique_id = technique_ids.get(rel["target_ref"])
        if source is None or technique_id is None or not _is_live(source):
            continue
        if source["type"] == "x-mitre-data-component":
            found[technique_id].add(_data_component(objects, source))
        elif source["type"] == "x-mitre-detection-strategy":
            found[technique_id].update(_strategy_components(objects, source))
    return {key: sorted(value, key=lambda c: (c.id, c.name)) for key, value in found.items()}


def _strategy_components(objects: _Bundle, strategy: Mapping[str, Any]) -> Iterable[DataComponent]:
    for analytic_ref in strategy.get("x_mitre_analytic_refs", ()):
        analytic = objects.by_id.get(analytic_ref)
        if analytic is None or not _is_live(analytic):
            continue
        for log_source in analytic.get("x_mitre_log_source_references", ()):
            component = objects.by_id.get(log_source.get("x_mitre_data_component_ref", ""))
            if component is not None and _is_live(component):
                yield _data_component(objects, component)


def _data_component(objects: _Bundle, component: Mapping[str, Any]) -> DataComponent:
    """Name a data component as ATT&CK shows it: "Process: Process Creation" before v18."""
    name = str(component["name"])
    data_source = objects.by_id.get(component.get("x_mitre_data_source_ref") or "")
    if data_source is not None:
        name = f"{data_source['name']}: {name}"
    return DataComponent(_mitre_id(component) or "", name)


def _technique(
    obj: Mapping[str, Any],
    technique_id: str,
    revoked_by: str | None,
    strategies: list[DetectionStrategy],
    components: list[DataComponent],
) -> Technique:
    tactics = tuple(
        phase["phase_name"]
        for phase in obj.get("kill_chain_phases", ())
        if phase.get("kill_chain_name") == "mitre-attack"
    )
    return Technique(
        id=technique_id,
        name=str(obj["name"]),
        tactics=tactics,
        platforms=tuple(obj.get("x_mitre_platforms", ())),
        summary=summarize_description(obj.get("description", "")),
        detection=clean_attack_text(obj.get("x_mitre_detection", "")),
        detection_strategies=tuple(strategies),
        data_components=tuple(components),
        deprecated=bool(obj.get("x_mitre_deprecated", False)),
        revoked=bool(obj.get("revoked", False)),
        revoked_by=revoked_by,
        url=_mitre_url(obj) or technique_url(technique_id),
    )


def default_bundle_path() -> Path:
    """Return the path where :func:`fetch_bundle` saves the bundle when no ``dest`` is given."""
    return Path(platformdirs.user_cache_dir("socfeed")) / "enterprise-attack.json"


def fetch_bundle(
    url: str = DEFAULT_BUNDLE_URL, dest: Path | None = None, timeout: float = 60.0
) -> Path:
    """Download a STIX bundle to ``dest`` and return the path. Raise AttackDataError on failure.

    ``timeout`` is in seconds, per network operation. The download goes to a temporary file
    beside ``dest`` and replaces ``dest`` only once it parses as a STIX bundle, so a failed
    download leaves an earlier copy in place.
    """
    dest = dest or default_bundle_path()
    dest.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
    temp_path = Path(temp_name)
    try:
        with os.fdopen(handle, "wb") as output:
            _download(url, output, timeout)
        try:
            read_stix_bundle(temp_path)
        except AttackDataError as exc:
            raise AttackDataError(exc.reason, Location("attack", url)) from exc
        temp_path.replace(dest)
    finally:
        temp_path.unlink(missing_ok=True)

    log.info("fetched STIX bundle %s to %s (%d bytes)", url, dest, dest.stat().st_size)
    return dest


def _download(url: str, output: BinaryIO, timeout: float) -> None:
    location = Location("attack", url)
    try:
        with httpx.stream("GET", url, timeout=timeout, follow_redirects=True) as response:
            response.raise_for_status()
            for chunk in response.iter_bytes():
                output.write(chunk)
    except httpx.HTTPStatusError as exc:
        status = exc.response.status_code
        raise AttackDataError(f"download failed with HTTP {status}", location) from exc
    except httpx.HTTPError as exc:
        reason = f"download failed: {exc}; check the URL and the network"
        raise AttackDataError(reason, location) from exc
