"""Tests for socfeed.attack.stix on a bundle cut from MITRE's real Enterprise ATT&CK v15 data."""

from __future__ import annotations

import functools
import json
import socket
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from socfeed.attack.index import AttackDataError, AttackIndex, read_index, write_index
from socfeed.attack.knowledge import KnowledgeBase
from socfeed.attack.stix import fetch_bundle, load_stix_bundle, read_stix_bundle

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "attack"
BUNDLE = FIXTURES / "enterprise-attack-v15-trimmed.json"


@pytest.fixture(scope="module")
def index() -> AttackIndex:
    return load_stix_bundle(BUNDLE, attack_version="15")


def test_tactics_follow_matrix_order(index: AttackIndex) -> None:
    names = [tactic.name for tactic in index.tactics]
    assert names[:3] == ["Reconnaissance", "Resource Development", "Initial Access"]
    assert names[6] == "Defense Evasion"
    assert names[-1] == "Impact"
    assert len(names) == 14


def test_tactic_order_source_is_matrix(index: AttackIndex) -> None:
    assert index.tactic_order_source == "matrix"


def test_tactic_carries_shortname(index: AttackIndex) -> None:
    assert index.tactics[0].shortname == "reconnaissance"
    assert index.tactics[0].id == "TA0043"


def test_revoked_map_from_relationship(index: AttackIndex) -> None:
    assert index.revoked_by == {"T1086": "T1059.001"}


def test_revoked_technique_flagged(index: AttackIndex) -> None:
    assert index.techniques["T1086"].revoked
    assert index.techniques["T1086"].revoked_by == "T1059.001"


def test_deprecated_technique_flagged(index: AttackIndex) -> None:
    assert index.techniques["T1064"].deprecated


def test_subtechnique_parent_in_index(index: AttackIndex) -> None:
    subtechnique = index.techniques["T1059.001"]
    assert subtechnique.is_subtechnique
    assert subtechnique.parent_id == "T1059"
    assert "T1059" in index.techniques


def test_technique_tactics_from_kill_chain(index: AttackIndex) -> None:
    assert index.techniques["T1071.001"].tactics == ("command-and-control",)


def test_technique_platforms(index: AttackIndex) -> None:
    assert index.techniques["T1059.001"].platforms == ("Windows",)


def test_technique_url_from_reference(index: AttackIndex) -> None:
    assert index.techniques["T1059.001"].url == "https://attack.mitre.org/techniques/T1059/001"


def test_summary_is_short_and_clean(index: AttackIndex) -> None:
    summary = index.techniques["T1059.001"].summary
    assert summary.startswith("Adversaries may abuse PowerShell commands and scripts")
    assert "(Citation" not in summary
    assert len(summary) <= 500


def test_detection_text_without_citations(index: AttackIndex) -> None:
    detection = index.techniques["T1059.001"].detection
    assert "execution policy" in detection
    assert "(Citation" not in detection


def test_data_components_from_detects(index: AttackIndex) -> None:
    names = [component.name for component in index.techniques["T1059.001"].data_components]
    assert "Process: Process Creation" in names
    assert "Script: Script Execution" in names


def test_no_detection_strategies_before_v18(index: AttackIndex) -> None:
    assert index.techniques["T1059.001"].detection_strategies == ()


def test_version_from_argument(index: AttackIndex) -> None:
    assert index.attack_version == "15"


def test_version_unknown_without_collection() -> None:
    assert load_stix_bundle(BUNDLE).attack_version == "unknown"


def test_version_from_collection(tmp_path: Path) -> None:
    bundle = json.loads(BUNDLE.read_text("utf-8"))
    bundle["objects"].append(
        {"type": "x-mitre-collection", "id": "x-mitre-collection--1", "x_mitre_version": "15.1"}
    )
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle), "utf-8")
    assert load_stix_bundle(path, attack_version="14").attack_version == "15.1"


def test_notice_from_marking(index: AttackIndex) -> None:
    assert index.notice.startswith("Copyright 2015-2024, The MITRE Corporation.")


def test_guessed_order_without_matrix(tmp_path: Path) -> None:
    bundle = json.loads(BUNDLE.read_text("utf-8"))
    bundle["objects"] = [obj for obj in bundle["objects"] if obj["type"] != "x-mitre-matrix"]
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle), "utf-8")
    built = load_stix_bundle(path)
    assert built.tactic_order_source.startswith("guess")
    assert built.tactics[0].name == "Reconnaissance"


def test_index_round_trips_through_file(index: AttackIndex, tmp_path: Path) -> None:
    write_index(index, tmp_path / "index.json.gz")
    assert read_index(tmp_path / "index.json.gz") == index


def test_knowledge_base_over_stix_index(index: AttackIndex) -> None:
    knowledge_base = KnowledgeBase.from_index(index)
    mapping = knowledge_base.normalize_rule_attack(["T1086"], ["Stealth"])
    assert mapping.techniques == ("T1059", "T1059.001")
    assert mapping.attack_version == "15"


def test_new_tactic_name_maps_to_old_version(index: AttackIndex) -> None:
    knowledge_base = KnowledgeBase.from_index(index)
    tactic = knowledge_base.tactic("Stealth")
    assert tactic is not None
    assert tactic.name == "Defense Evasion"


def test_not_a_bundle_raises(tmp_path: Path) -> None:
    path = tmp_path / "list.json"
    path.write_text("[]", "utf-8")
    with pytest.raises(AttackDataError, match="not a STIX bundle"):
        load_stix_bundle(path)


def test_invalid_json_raises(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"type": "bundle", ', "utf-8")
    with pytest.raises(AttackDataError, match="unreadable STIX bundle"):
        read_stix_bundle(path)


def test_object_without_id_raises(tmp_path: Path) -> None:
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps({"type": "bundle", "objects": [{"type": "attack-pattern"}]}))
    with pytest.raises(AttackDataError, match="invalid STIX object"):
        load_stix_bundle(path)


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """Serve a temporary folder over HTTP on 127.0.0.1; yield its base URL and the folder."""
    root = tmp_path / "served"
    root.mkdir()

    class QuietHandler(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_fetch_bundle_downloads(http_root: tuple[str, Path], tmp_path: Path) -> None:
    base_url, root = http_root
    (root / "enterprise-attack.json").write_bytes(BUNDLE.read_bytes())
    dest = tmp_path / "cache" / "enterprise-attack.json"
    assert fetch_bundle(f"{base_url}/enterprise-attack.json", dest) == dest
    assert dest.read_bytes() == BUNDLE.read_bytes()


def test_fetch_bundle_http_error(http_root: tuple[str, Path], tmp_path: Path) -> None:
    base_url, _ = http_root
    dest = tmp_path / "enterprise-attack.json"
    with pytest.raises(AttackDataError, match="HTTP 404"):
        fetch_bundle(f"{base_url}/absent.json", dest)
    assert not dest.exists()


def test_fetch_bundle_keeps_old_copy(http_root: tuple[str, Path], tmp_path: Path) -> None:
    base_url, root = http_root
    (root / "page.json").write_text("<html>not a bundle</html>", "utf-8")
    dest = tmp_path / "enterprise-attack.json"
    dest.write_text("earlier copy", "utf-8")
    with pytest.raises(AttackDataError, match="unreadable STIX bundle"):
        fetch_bundle(f"{base_url}/page.json", dest)
    assert dest.read_text("utf-8") == "earlier copy"


def test_fetch_bundle_leaves_no_partial_file(http_root: tuple[str, Path], tmp_path: Path) -> None:
    base_url, _ = http_root
    with pytest.raises(AttackDataError):
        fetch_bundle(f"{base_url}/absent.json", tmp_path / "enterprise-attack.json")
    assert list(tmp_path.glob("*.part")) == []


def test_fetch_bundle_refused_connection(tmp_path: Path) -> None:
    # A port just released by the OS has no listener, so the connection is refused.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/enterprise-attack.json"
    with pytest.raises(AttackDataError, match="download failed"):
        fetch_bundle(url, tmp_path / "enterprise-attack.json", timeout=5)
