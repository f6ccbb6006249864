"""Tests of the technique -> tactic lookups that the exports use."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from socfeed.export.tactics import (
    FALLBACK_ATTACK_VERSION,
    KnowledgeTactics,
    StaticTactics,
    default_tactics,
    tactics_for,
)

LOOKUP = StaticTactics(
    tactics={"T1059": ["execution"], "T1078": ["initial-access", "persistence"]},
    names={"T1059": "Command and Scripting Interpreter"},
    replacements={"T1562.001": "T1685"},
)


def test_fitting_rule_tactic_kept() -> None:
    assert tactics_for("T1059", ["Execution", "Persistence"], LOOKUP) == ["execution"]


def test_unfitting_rule_tactics_replaced_by_known() -> None:
    assert tactics_for("T1078", ["Discovery"], LOOKUP) == ["initial-access", "persistence"]


def test_no_rule_tactics_gives_every_known() -> None:
    assert tactics_for("T1078", [], LOOKUP) == ["initial-access", "persistence"]


def test_unknown_technique_keeps_rule_tactics() -> None:
    tactics = tactics_for("T9999", ["InitialAccess", "Defense Evasion", "no such tactic"], LOOKUP)

    assert tactics == ["initial-access", "stealth"]


def test_unknown_technique_without_rule_tactics() -> None:
    assert tactics_for("T9999", [], LOOKUP) == []


def test_static_subtechnique_falls_back_to_parent() -> None:
    assert LOOKUP.tactics_of("T1059.001") == ("execution",)


def test_static_replacement_and_name() -> None:
    assert LOOKUP.current_id("T1562.001") == "T1685"
    assert LOOKUP.current_id("T1059") == "T1059"
    assert LOOKUP.name_of("T1059") == "Command and Scripting Interpreter"
    assert LOOKUP.name_of("T1059.001") is None


def test_knowledge_lookup_over_committed_index() -> None:
    knowledge = pytest.importorskip("socfeed.attack.knowledge")
    lookup = KnowledgeTactics(knowledge.KnowledgeBase())

    assert lookup.attack_version == "19"
    assert lookup.tactics_of("T1071.001") == ("command-and-control",)
    assert lookup.name_of("T1059") == "Command and Scripting Interpreter"
    assert lookup.current_id("T1086") == "T1059.001"
    assert lookup.tactics_of("T9999") == ()


def test_default_uses_knowledge_base() -> None:
    pytest.importorskip("socfeed.attack.knowledge")

    assert isinstance(default_tactics(), KnowledgeTactics)


def test_default_without_knowledge_module(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = importlib.import_module

    def import_module(name: str, package: str | None = None) -> object:
        if name == "socfeed.attack.knowledge":
            raise ImportError(name)
        return real_import(name, package)

    monkeypatch.setattr(importlib, "import_module", import_module)

    lookup = default_tactics()

    assert isinstance(lookup, StaticTactics)
    assert lookup.attack_version == FALLBACK_ATTACK_VERSION


def test_default_when_index_unreadable(tmp_path: Path) -> None:
    knowledge = pytest.importorskip("socfeed.attack.knowledge")
    broken = knowledge.KnowledgeBase(tmp_path / "missing.json.gz")

    with knowledge.use_knowledge_base(broken):
        lookup = default_tactics()

    assert isinstance(lookup, StaticTactics)
