"""Tests for the template texts of socfeed.enrich.text and the facts they read."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import NamedTuple

import pytest
import yaml

from socfeed.enrich.facts import (
    QUERY_MAX_CHARS,
    DataSourceRef,
    RuleFacts,
    TechniqueRef,
    facts_from_rule,
)
from socfeed.enrich.text import (
    FALSE_POSITIVES_MAX_CHARS,
    HYPOTHESIS_MAX_CHARS,
    GeneratedText,
    ModelTexts,
    describe_behaviour,
    generate,
    generate_many,
    source_false_positives,
    template_false_positives,
    template_hypothesis,
)
from socfeed.model import DataSource, Rule

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"

PHISH = (
    "azure-sentinel/Hunting Queries/Microsoft 365 Defender/Email and Collaboration Queries/"
    "Quarantine/High Confidence Phish Released.yaml"
)
SIGMA = "sigma/rules/windows/process_creation/proc_creation_win_powershell_encode.yml"
SPLUNK = (
    "splunk-security-content/detections/endpoint/"
    "certutil_download_with_urlcache_and_split_arguments.yml"
)
ELASTIC = (
    "elastic-detection-rules/hunting/windows/queries/"
    "detect_dll_hijack_via_masquerading_as_microsoft_native_libraries.toml"
)
KQL = "m365-hunting-queries/Campaigns/Ransomware hits healthcare - Clearing of system logs.txt"


class FakeTechnique(NamedTuple):
    name: str
    tactics: tuple[str, ...]


# Names and tactic shortnames as the ATT&CK v19 index has them.
ATTACK = {
    "T1566": FakeTechnique("Phishing", ("initial-access",)),
    "T1059": FakeTechnique("Command and Scripting Interpreter", ("execution",)),
    "T1059.001": FakeTechnique("PowerShell", ("execution",)),
    "T1105": FakeTechnique("Ingress Tool Transfer", ("command-and-control",)),
    "T1574": FakeTechnique("Hijack Execution Flow", ("stealth", "execution")),
    "T1574.001": FakeTechnique("DLL", ("stealth", "execution")),
}


def _rule(source: str, path: str, **fields: object) -> Rule:
    values: dict[str, object] = {
        "source": source,
        "path": path,
        "rule_id": path,
        "format": source,
        "kind": "detection",
        "query": "",
        "raw_text": "",
        "key": f"{source}:{path}",
    }
    values.update(fields)
    return Rule(**values)  # type: ignore[arg-type]


def _load(relative: str) -> Rule:
    """Build a Rule from a fixture with the few fields the text generators read."""
    path = FIXTURES / relative
    source, inner = relative.split("/", 1)
    text = path.read_text(encoding="utf-8")
    if source == "azure-sentinel":
        doc = yaml.safe_load(text)
        tables = doc["requiredDataConnectors"][0]["dataTypes"]
        return _rule(
            source,
            inner,
            title=doc["name"],
            description=doc["description"],
            language="kql",
            kind="hunting",
            query=doc["query"],
            tactics=doc["tactics"],
            techniques=doc["relevantTechniques"],
            data_sources=[DataSource("table", name) for name in tables],
        )
    if source == "sigma":
        doc = yaml.safe_load(text)
        logsource = doc["logsource"]
        return _rule(
            source,
            inner,
            title=doc["title"],
            description=doc["description"],
            language="sigma",
            query=yaml.safe_dump(doc["detection"]),
            techniques=[t.split(".", 1)[1] for t in doc["tags"] if t.startswith("attack.t")],
            tactics=[t.split(".", 1)[1] for t in doc["tags"] if not t.startswith("attack.t")],
            data_sources=[
                DataSource("logsource", f"{logsource['product']}/{logsource['category']}")
            ],
            false_positives=doc["falsepositives"],
        )
    if source == "splunk-security-content":
        doc = yaml.safe_load(text)
        return _rule(
            source,
            inner,
            title=doc["name"],
            description=doc["description"],
            language="spl",
            query=doc["search"],
            techniques=doc["tags"]["mitre_attack_id"],
            data_sources=[DataSource("splunk_data_source", name) for name in doc["data_source"]],
            false_positives=[doc["known_false_positives"]],
        )
    if source == "elastic-detection-rules":
        hunt = tomllib.loads(text)["hunt"]
        return _rule(
            source,
            inner,
            title=hunt["name"],
            description=hunt["description"],
            language="esql",
            kind="hunting",
            query=hunt["query"][0],
            techniques=hunt["mitre"],
            data_sources=[
                DataSource("index", "logs-endpoint.events.library-*", origin="derived"),
                *(DataSource("integration", name) for name in hunt["integration"]),
            ],
        )
    # A plain KQL file has no fields at all: the title is its file name, the query its
    # text, and it names no technique.
    return _rule(
        source,
        inner,
        title=path.stem,
        language="kql",
        kind="hunting",
        query=text,
        data_sources=[DataSource("table", "DeviceProcessEvents", origin="derived")],
    )


def _facts(relative: str) -> RuleFacts:
    return facts_from_rule(_load(relative), ATTACK.get)


ALL_FIXTURES = [PHISH, SIGMA, SPLUNK, ELASTIC, KQL]


# --- facts ----------------------------------------------------------------------------------


def test_facts_sub_technique_name_has_parent() -> None:
    facts = _facts(SIGMA)
    assert facts.techniques == (
        TechniqueRef("T1059.001", "Command and Scripting Interpreter: PowerShell", ("Execution",)),
    )


def test_facts_tactics_become_display_names() -> None:
    assert _facts(PHISH).tactics == ("Initial Access",)


def test_facts_unknown_technique_keeps_id() -> None:
    facts = facts_from_rule(_rule("x", "a", title="t", language="kql", techniques=["t9999"]))
    assert facts.techniques == (TechniqueRef("T9999", "", ()),)


def test_facts_drop_values_that_are_no_technique() -> None:
    facts = facts_from_rule(_rule("x", "a", title="t", language="kql", techniques=["TT1482"]))
    assert facts.techniques == ()


def test_facts_cut_long_query() -> None:
    facts = facts_from_rule(_rule("x", "a", title="t", language="kql", query="x" * 10_000))
    assert len(facts.query) == QUERY_MAX_CHARS


def test_facts_content_hash_is_the_rules() -> None:
    rule = _load(PHISH)
    assert facts_from_rule(rule).content_hash == rule.content_hash()


def test_facts_data_sources_without_repeats() -> None:
    rule = _load(PHISH)
    rule.data_sources.append(DataSource("table", "EmailEvents"))
    names = [d.name for d in facts_from_rule(rule).data_sources]
    assert names == ["EmailEvents", "CloudAppEvents"]


# --- hypothesis templates -------------------------------------------------------------------


def test_hypothesis_sentinel_phish_released() -> None:
    text = template_hypothesis(_facts(PHISH))
    assert text.startswith("Adversaries may gain initial access through Phishing (T1566); ")
    assert "hunt for high confidence phish email that has been released from the" in text
    assert "EmailEvents and CloudAppEvents tables" in text
    assert "messages" in text


def test_hypothesis_sigma_powershell() -> None:
    text = template_hypothesis(_facts(SIGMA))
    assert "Command and Scripting Interpreter: PowerShell (T1059.001)" in text
    assert "run malicious code" in text
    assert "powershell with a base64 payload" in text
    assert "windows process_creation logs" in text


def test_hypothesis_splunk_certutil() -> None:
    text = template_hypothesis(_facts(SPLUNK))
    assert "Ingress Tool Transfer (T1105)" in text
    assert "hunt for the use of certutil.exe to download files" in text
    assert "Sysmon EventID 1" in text
    assert "The following analytic" not in text


def test_hypothesis_elastic_esql_hunt() -> None:
    text = template_hypothesis(_facts(ELASTIC))
    assert "Hijack Execution Flow: DLL (T1574.001)" in text
    assert "cases where a process loads a DLL" in text
    assert "logs-endpoint.events.library-* index" in text
    assert "scope the hosts and files involved" in text


def test_hypothesis_kql_without_technique() -> None:
    text = template_hypothesis(_facts(KQL))
    assert text.startswith("No ATT&CK technique is mapped to this rule. Hunt for ")
    assert '"Ransomware hits healthcare - Clearing of system logs"' in text
    assert "DeviceProcessEvents table" in text
    assert "Adversaries may" not in text


@pytest.mark.parametrize("relative", ALL_FIXTURES)
def test_hypothesis_within_limit(relative: str) -> None:
    assert len(template_hypothesis(_facts(relative))) <= HYPOTHESIS_MAX_CHARS


@pytest.mark.parametrize("relative", ALL_FIXTURES)
def test_hypothesis_is_deterministic(relative: str) -> None:
    assert template_hypothesis(_facts(relative)) == template_hypothesis(_facts(relative))


def test_hypothesis_long_inputs_shorten_behaviour() -> None:
    facts = _facts(PHISH)
    long_facts = RuleFacts(
        **{
            **facts.__dict__,
            "description": "Detects " + "very " * 200 + "odd logons.",
            "data_sources": tuple(
                DataSourceRef(f"Table{n}WithALongName", "table") for n in range(9)
            ),
        }
    )
    text = template_hypothesis(long_facts)
    assert len(text) <= HYPOTHESIS_MAX_CHARS
    assert text.endswith("involved.")


def test_hypothesis_tactic_only() -> None:
    facts = RuleFacts(**{**_facts(KQL).__dict__, "tactics": ("Credential Access",)})
    assert template_hypothesis(facts).startswith("Adversaries may steal credentials; hunt for ")


def test_hypothesis_without_data_sources_names_language() -> None:
    facts = RuleFacts(**{**_facts(KQL).__dict__, "data_sources": ()})
    assert "with the rule's KQL query" in template_hypothesis(facts)


@pytest.mark.parametrize(
    ("description", "expected"),
    [
        ("This query shows information about risky sign-ins.", "risky sign-ins"),
        ("The following analytic detects the use of net.exe.", "the use of net.exe"),
        ("Detects suspicious child processes of Word. More text.", "suspicious child processes"),
        ("This hunt identifies when a user adds a key.", "cases where a user adds a key"),
        ("Identifies `whoami` runs by [SYSTEM](https://x.test).", "whoami runs by SYSTEM"),
    ],
)
def test_behaviour_strips_lead_words(description: str, expected: str) -> None:
    facts = RuleFacts(**{**_facts(KQL).__dict__, "description": description})
    assert describe_behaviour(facts).startswith(expected)


def test_behaviour_skips_attack_description() -> None:
    description = "Adversaries may abuse PowerShell commands and scripts for execution."
    facts = RuleFacts(**{**_facts(SIGMA).__dict__, "description": description})
    assert describe_behaviour(facts).startswith("activity matching")


def test_behaviour_falls_back_to_title() -> None:
    facts = RuleFacts(**{**_facts(SIGMA).__dict__, "description": "Detects it."})
    assert describe_behaviour(facts) == (
        'activity matching "Suspicious Execution of Powershell with Base64"'
    )


# --- false-positive guidance ----------------------------------------------------------------


def test_false_positives_template_for_phish() -> None:
    text = template_false_positives(_facts(PHISH))
    assert "releasing reviewed messages" in text
    assert "In email data" in text


def test_false_positives_template_for_powershell() -> None:
    text = template_false_positives(_facts(SIGMA))
    assert "software deployment" in text
    assert "hosts, accounts and parent processes" in text


def test_false_positives_template_without_technique() -> None:
    text = template_false_positives(_facts(KQL))
    assert text.startswith("Expect benign matches from administrators")


@pytest.mark.parametrize("relative", ALL_FIXTURES)
def test_false_positives_within_limit(relative: str) -> None:
    assert len(template_false_positives(_facts(relative))) <= FALSE_POSITIVES_MAX_CHARS


def test_source_false_positives_skip_unknown() -> None:
    facts = _facts(SIGMA)
    assert facts.false_positives == ("Unknown",)
    assert source_false_positives(facts) == ""


def test_source_false_positives_join_notes() -> None:
    facts = RuleFacts(
        **{**_facts(SIGMA).__dict__, "false_positives": ("Admin scripts", "Backups.")}
    )
    assert source_false_positives(facts) == "Admin scripts. Backups."


# --- generate -------------------------------------------------------------------------------


def test_generate_uses_rule_false_positives() -> None:
    facts = _facts(SPLUNK)
    hypothesis, false_positives = generate(facts)
    assert hypothesis.origin == "template"
    assert false_positives.origin == "source"
    assert false_positives.text.startswith("Limited false positives in most environments")


def test_generate_templates_for_unknown_false_positives() -> None:
    _, false_positives = generate(_facts(SIGMA))
    assert false_positives == GeneratedText(template_false_positives(_facts(SIGMA)), "template")


class FixedModel:
    def __init__(self, reply: ModelTexts | None) -> None:
        self.reply = reply

    def texts_for(self, facts: RuleFacts) -> ModelTexts | None:
        return self.reply


def test_generate_prefers_model_text() -> None:
    model = FixedModel(ModelTexts("Model hypothesis.", "Model guidance.", "m1"))
    hypothesis, false_positives = generate(_facts(PHISH), model)
    assert hypothesis == GeneratedText("Model hypothesis.", "model", "m1")
    assert false_positives == GeneratedText("Model guidance.", "model", "m1")


def test_generate_keeps_source_over_model() -> None:
    model = FixedModel(ModelTexts("Model hypothesis.", "Model guidance.", "m1"))
    _, false_positives = generate(_facts(SPLUNK), model)
    assert false_positives.origin == "source"


def test_generate_falls_back_when_model_fails() -> None:
    hypothesis, _ = generate(_facts(PHISH), FixedModel(None))
    assert hypothesis == GeneratedText(template_hypothesis(_facts(PHISH)), "template")


def test_generate_many_keeps_order() -> None:
    facts_list = [_facts(relative) for relative in ALL_FIXTURES]
    results = generate_many(facts_list, FixedModel(None), workers=3)
    assert [h.text for h, _ in results] == [template_hypothesis(f) for f in facts_list]


# --- real corpus ----------------------------------------------------------------------------


def _sigma_facts(path: Path) -> RuleFacts | None:
    try:
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)
    except yaml.YAMLError:
        return None
    if not isinstance(doc, dict) or "title" not in doc:
        return None
    tags = [str(tag) for tag in doc.get("tags") or []]
    logsource = doc.get("logsource") or {}
    name = "/".join(str(logsource[k]) for k in ("product", "category", "service") if k in logsource)
    rule = _rule(
        "sigma",
        str(path),
        title=str(doc["title"]),
        description=str(doc.get("description") or ""),
        language="sigma",
        techniques=[t.split(".", 1)[1] for t in tags if t.lower().startswith("attack.t")],
        tactics=[t.split(".", 1)[1] for t in tags if t.startswith("attack.") and "." in t],
        data_sources=[DataSource("logsource", name)] if name else [],
        false_positives=[str(f) for f in doc.get("falsepositives") or []],
    )
    return facts_from_rule(rule, ATTACK.get)


@pytest.mark.corpus
def test_templates_fit_every_sigma_rule() -> None:
    if not CORPUS.is_dir():
        pytest.skip(f"real corpora not found at {CORPUS}")
    facts_list = [_sigma_facts(path) for path in sorted((CORPUS / "sigma").rglob("*.yml"))]
    loaded = [facts for facts in facts_list if facts is not None]
    assert len(loaded) > 3000

    too_long = [f.key for f in loaded if len(template_hypothesis(f)) > HYPOTHESIS_MAX_CHARS]
    assert too_long == []
    fp_too_long = [f.key for f in loaded if len(template_false_positives(f)) > 600]
    assert fp_too_long == []
    unfilled = [f.key for f in loaded if "None" in template_hypothesis(f)]
    assert unfilled == []
