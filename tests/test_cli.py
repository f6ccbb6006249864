"""Tests of the socfeed command line through Typer's runner, on fixture folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import FIXTURES
from socfeed.cli import app

PHISH = "High Confidence Phish Released.yaml"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Point every setting at the test's folder and keep ATT&CK refresh offline."""
    values = {
        "SOCFEED_DB": str(tmp_path / "cli.db"),
        "SOCFEED_CACHE": str(tmp_path / "cache"),
        "SOCFEED_ATTACK_STIX": "none",
        "SOCFEED_ATTACK_INDEX": str(tmp_path / "attack-index.json.gz"),
    }
    for name in ("SOCFEED_MIRROR", "SOCFEED_CONFIG", "SOCFEED_LLM_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def ingest_fixture(source: str = "azure-sentinel") -> None:
    code, _, stderr = run("update", "--source", source, "--path", str(FIXTURES / source))
    assert code == 0, stderr


def test_update_local_path_then_sources(env: dict[str, str]) -> None:
    code, stdout, stderr = run(
        "update",
        "--source",
        "azure-sentinel",
        "--path",
        str(FIXTURES / "azure-sentinel"),
        "--json",
    )

    assert code == 0, stderr
    row = json.loads(stdout)["sources"][0]
    assert row["mode"] == "local"
    assert row["files_seen"] == row["files_with_rules"] + row["files_failed"]

    code, stdout, _ = run("sources", "--json")
    assert code == 0
    record = json.loads(stdout)[0]
    assert record["name"] == "azure-sentinel"
    assert record["commit"] is None


def test_search_and_show_by_path(env: dict[str, str]) -> None:
    ingest_fixture()

    code, stdout, _ = run("search", "phish", "--technique", "t1566", "--json")
    assert code == 0
    found = json.loads(stdout)["rules"]
    assert any(r["title"] == "High Confidence Phish Released" for r in found)

    code, stdout, _ = run("show", PHISH, "--json")
    assert code == 0
    rule = json.loads(stdout)
    assert rule["kind"] == "hunting"
    assert "EmailEvents" in [d["name"] for d in rule["data_sources"]]


def test_show_unknown_rule_fails_in_one_line(env: dict[str, str]) -> None:
    ingest_fixture()

    code, _, stderr = run("show", "no-such-rule")

    assert code == 1
    assert stderr.strip().count("\n") == 0
    assert "no rule matches 'no-such-rule'" in stderr


def test_search_rejects_bad_severity(env: dict[str, str]) -> None:
    code, _, stderr = run("search", "--severity", "urgent")

    assert code == 1
    assert "invalid --severity 'urgent'" in stderr


def test_export_navigator_file(env: dict[str, str], tmp_path: Path) -> None:
    ingest_fixture()
    target = tmp_path / "layer.json"

    code, _, stderr = run("export", "--format", "navigator", "-o", str(target))

    assert code == 0, stderr
    layer = json.loads(target.read_text(encoding="utf-8"))
    assert layer["versions"]["layer"] == "4.5"
    assert all(entry.get("tactic") for entry in layer["techniques"])


def test_attack_report_counts_resolutions(env: dict[str, str]) -> None:
    ingest_fixture()

    code, stdout, _ = run("attack", "report", "--json")

    assert code == 0
    counts = json.loads(stdout)["azure-sentinel"]
    assert counts["rules"] >= 1
    assert counts["ok"] >= 1


def test_attack_build_rejects_small_bundle(env: dict[str, str]) -> None:
    # The trimmed fixture contains a few dozen objects, far too few to replace an index.
    bundle = FIXTURES / "attack" / "enterprise-attack-v15-trimmed.json"

    code, _, stderr = run("attack", "build", "--stix", str(bundle))

    assert code == 1
    assert "the index was not replaced" in stderr
    assert not Path(env["SOCFEED_ATTACK_INDEX"]).exists()


def test_update_missing_path_fails(env: dict[str, str], tmp_path: Path) -> None:
    code, _, stderr = run("update", "--source", "sigma", "--path", str(tmp_path / "nope"))

    assert code == 1
    assert "not found" in stderr


def test_build_site_writes_rule_pages(env: dict[str, str], tmp_path: Path) -> None:
    ingest_fixture()
    target = tmp_path / "site"

    code, stdout, stderr = run("build-site", str(target), "--workers", "1", "--json")

    assert code == 0, stderr
    report = json.loads(stdout)
    assert report["failed"] == []
    assert report["rules"] >= 1
    assert (target / "index.html").is_file()
    assert (target / "search" / "index.html").is_file()
