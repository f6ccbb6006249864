"""Tests for scripts/build_attack_index.py and scripts/trim_attack_bundle.py."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from socfeed.attack.index import DataComponent, DetectionStrategy, read_index
from socfeed.attack.knowledge import DEFAULT_INDEX_PATH

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
BUNDLE = (
    Path(__file__).resolve().parent / "fixtures" / "attack" / "enterprise-attack-v15-trimmed.json"
)


def load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def build() -> ModuleType:
    return load_script("build_attack_index")


@pytest.fixture(scope="module")
def trim() -> ModuleType:
    return load_script("trim_attack_bundle")


def test_v19_tactics_follow_ids_order(build: ModuleType) -> None:
    tactics = build.v19_tactics(
        {
            "impact": {"id": "TA0040", "name": "Impact"},
            "defense-impairment": {"id": "TA0112", "name": "Defense Impairment"},
            "stealth": {"id": "TA0005", "name": "Stealth"},
        }
    )
    assert [t.id for t in tactics] == ["TA0005", "TA0112", "TA0040"]


def test_unlisted_tactic_placed_last(build: ModuleType) -> None:
    tactics = build.v19_tactics(
        {
            "made-up": {"id": "TA0999", "name": "Made Up"},
            "impact": {"id": "TA0040", "name": "Impact"},
        }
    )
    assert [t.id for t in tactics] == ["TA0040", "TA0999"]


def test_revoked_technique_drops_detection(build: ModuleType) -> None:
    technique = build.merge_technique(
        "T1562.001",
        {"name": "Disable or Modify Tools", "status": "revoked", "revoked_by": "T1685"},
        {"platforms": ["Windows"], "description": "Adversaries may disable tools."},
        [DetectionStrategy("DET0001", "A strategy")],
        [DataComponent("DC0032", "Process Creation")],
    )
    assert technique.revoked
    assert technique.revoked_by == "T1685"
    assert technique.detection_strategies == ()
    assert technique.platforms == ("Windows",)


def test_technique_without_v18_entry(build: ModuleType) -> None:
    technique = build.merge_technique(
        "T1685",
        {"name": "Disable or Modify Tools", "tactics": ["defense-impairment"]},
        None,
        [],
        [],
    )
    assert technique.tactics == ("defense-impairment",)
    assert technique.summary == ""


def test_detection_joined_through_analytics(build: ModuleType) -> None:
    patterns = [{"stix_id": "attack-pattern--1", "external_id": "T1059.001"}]
    detection = {
        "detection_strategies": [
            {
                "stix_id": "strategy--1",
                "external_id": "DET0455",
                "name": "Abuse of PowerShell",
                "analytic_refs": ["analytic--1"],
            }
        ],
        "analytics": [
            {
                "stix_id": "analytic--1",
                "log_source_references": [{"x_mitre_data_component_ref": "component--1"}],
            }
        ],
        "data_components": [
            {"stix_id": "component--1", "external_id": "DC0032", "name": "Process Creation"}
        ],
    }
    relationships = [
        {
            "relationship_type": "detects",
            "source_ref": "strategy--1",
            "target_ref": "attack-pattern--1",
        }
    ]
    strategies, components = build.v18_detection_by_technique(patterns, detection, relationships)
    assert strategies == {"T1059.001": [DetectionStrategy("DET0455", "Abuse of PowerShell")]}
    assert components == {"T1059.001": [DataComponent("DC0032", "Process Creation")]}


def test_build_from_stix_bundle(build: ModuleType, tmp_path: Path) -> None:
    output = tmp_path / "index.json.gz"
    build.main(["--stix", str(BUNDLE), "--attack-version", "15", "--output", str(output)])
    assert read_index(output).revoked_by == {"T1086": "T1059.001"}


def test_committed_index_matches_packages(build: ModuleType) -> None:
    for distribution, pinned in build.PINNED.items():
        try:
            installed = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            installed = None
        if installed != pinned:
            pytest.skip(f"{distribution}=={pinned} (a build input, not a dependency) is absent")
    assert build.build_from_packages() == read_index(DEFAULT_INDEX_PATH)


def test_trim_is_stable_on_fixture(trim: ModuleType) -> None:
    bundle = json.loads(BUNDLE.read_text("utf-8"))
    assert trim.trim(bundle) == bundle


def test_trimmed_fixture_is_small() -> None:
    bundle = json.loads(BUNDLE.read_text("utf-8"))
    assert len(bundle["objects"]) < 60
