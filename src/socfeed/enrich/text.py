"""Hunt hypotheses and false-positive guidance: the rule's own text, templates or a model.

Templates are the default. They are deterministic and build each sentence from the rule's
ATT&CK technique, its title or description and the data it reads, so the same rule always
gets the same text. A model generator (socfeed.enrich.llm) can replace them. Whenever it
fails, the template text is used for that rule.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal, Protocol

from socfeed.attack.ids import tactic_by_any
from socfeed.enrich.facts import DataSourceRef, RuleFacts, TechniqueRef

Origin = Literal["source", "template", "model"]

HYPOTHESIS_MAX_CHARS = 400
FALSE_POSITIVES_MAX_CHARS = 600
_BEHAVIOUR_MAX_CHARS = 170


@dataclass(frozen=True)
class GeneratedText:
    """A generated text and where it came from; ``model`` is set when origin is "model"."""

    text: str
    origin: Origin
    model: str = ""


@dataclass(frozen=True)
class ModelTexts:
    """Both texts of one rule as a model wrote them, already validated."""

    hypothesis: str
    false_positives: str
    model: str


class TextModel(Protocol):
    """A model-backed generator that returns None when the caller should use the templates."""

    def texts_for(self, facts: RuleFacts) -> ModelTexts | None: ...


def generate(
    facts: RuleFacts, generator: TextModel | None = None
) -> tuple[GeneratedText, GeneratedText]:
    """Return the hunt hypothesis and the false-positive guidance of one rule.

    False-positive guidance is the rule's own text when it has any. Otherwise, and for the
    hypothesis, the model's text is used when a generator is given and succeeds, else the
    template's.
    """
    reply = generator.texts_for(facts) if generator is not None else None

    if reply is not None:
        hypothesis = GeneratedText(reply.hypothesis, "model", reply.model)
    else:
        hypothesis = GeneratedText(template_hypothesis(facts), "template")

    source_text = source_false_positives(facts)
    if source_text:
        false_positives = GeneratedText(source_text, "source")
    elif reply is not None:
        false_positives = GeneratedText(reply.false_positives, "model", reply.model)
    else:
        false_positives = GeneratedText(template_false_positives(facts), "template")
    return hypothesis, false_positives


def generate_many(
    facts_list: Sequence[RuleFacts], generator: TextModel | None = None, workers: int = 4
) -> list[tuple[GeneratedText, GeneratedText]]:
    """Run ``generate`` over many rules in order, with model requests in a small thread pool."""
    if generator is None or workers <= 1 or len(facts_list) <= 1:
        return [generate(facts, generator) for facts in facts_list]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="socfeed-text") as pool:
        return list(pool.map(lambda facts: generate(facts, generator), facts_list))


# Notes that rule files use to say they know no false positives. They carry no guidance,
# so the rule gets a template instead. "Unlikely" is kept because it is a claim.
_PLACEHOLDER_NOTES = {"", "-", "n/a", "na", "none", "unknown", "tbd", "todo", "none known"}


def source_false_positives(facts: RuleFacts) -> str:
    """Return the rule's own false-positive notes as one text, or "" when it has none."""
    notes = [" ".join(note.split()) for note in facts.false_positives]
    notes = [note for note in notes if note.lower().rstrip(".") not in _PLACEHOLDER_NOTES]
    if len(notes) == 1:
        return notes[0]
    return " ".join(note if note[-1] in ".!?" else note + "." for note in notes)


# --- hypothesis ---------------------------------------------------------------------------

# The adversary's goal in each tactic, keyed by tactic id so that renamed tactics
# (Defense Evasion, now Stealth) need no entry of their own.
_TACTIC_GOALS = {
    "TA0043": "gather information to plan an attack",
    "TA0042": "set up infrastructure, accounts or tools for an attack",
    "TA0001": "gain initial access",
    "TA0002": "run malicious code",
    "TA0003": "keep their foothold",
    "TA0004": "gain higher privileges",
    "TA0005": "evade detection",
    "TA0112": "weaken or disable defenses",
    "TA0006": "steal credentials",
    "TA0007": "learn about the environment",
    "TA0008": "move to other systems",
    "TA0009": "gather data of interest",
    "TA0011": "communicate with and control compromised systems",
    "TA0010": "steal data",
    "TA0040": "disrupt systems or destroy data",
}


def template_hypothesis(facts: RuleFacts) -> str:
    """Write the hunt hypothesis of a rule from its technique, behaviour and data."""
    behaviour = describe_behaviour(facts)
    text = _hypothesis_with(facts, behaviour)
    if len(text) > HYPOTHESIS_MAX_CHARS:
        # Long table lists or technique names leave less room for the behaviour.
        room = HYPOTHESIS_MAX_CHARS - (len(text) - len(behaviour))
        text = _hypothesis_with(facts, _shorten(behaviour, max(room, 40)))
    return _fit(text, HYPOTHESIS_MAX_CHARS)


def _hypothesis_with(facts: RuleFacts, behaviour: str) -> str:
    technique = primary_technique(facts.techniques)
    tactic_id = _primary_tactic_id(facts, technique)
    where = describe_data(facts.data_sources, facts.language)
    entities = _join(scope_entities(facts)[:3])
    purpose = "confirm whether it is malicious"
    if facts.kind == "detection":
        purpose = "confirm whether each hit is malicious"

    hunt = f"hunt for {behaviour} {where} to {purpose} and scope the {entities} involved."
    if technique is not None:
        return f"Adversaries may {_adversary_clause(technique, tactic_id)}; {hunt}"
    if tactic_id is not None:
        return f"Adversaries may {_TACTIC_GOALS[tactic_id]}; {hunt}"
    return f"No ATT&CK technique is mapped to this rule. {hunt[0].upper()}{hunt[1:]}"


def primary_technique(techniques: Sequence[TechniqueRef]) -> TechniqueRef | None:
    """Return the most specific technique: a sub-technique over its listed parent."""
    if not techniques:
        return None
    subs = [t for t in techniques if "." in t.id]
    return subs[0] if subs else techniques[0]


def _primary_tactic_id(facts: RuleFacts, technique: TechniqueRef | None) -> str | None:
    """Return the tactic the rule is about: one the rule and its technique share, if any."""
    technique_tactics = [tactic_by_any(name) for name in technique.tactics] if technique else []
    rule_tactics = [tactic_by_any(name) for name in facts.tactics]
    known_technique = [t.id for t in technique_tactics if t is not None]
    known_rule = [t.id for t in rule_tactics if t is not None]
    for tactic_id in known_technique:
        if tactic_id in known_rule:
            return tactic_id
    candidates = known_technique or known_rule
    return candidates[0] if candidates else None


# Goals for techniques whose tactic's goal reads wrongly next to them.
_TECHNIQUE_GOALS = {
    "T1105": "bring tools or files into the environment",
    "T1071": "hide command and control traffic in common protocols",
    "T1090": "relay command and control traffic",
}


def _adversary_clause(technique: TechniqueRef, tactic_id: str | None) -> str:
    named = f"{technique.name} ({technique.id})" if technique.name else f"technique {technique.id}"
    goal = _TECHNIQUE_GOALS.get(technique.id.split(".")[0])
    if goal is None and tactic_id is not None:
        goal = _TACTIC_GOALS[tactic_id]
    return f"{goal} through {named}" if goal else f"use {named}"


# Opening words of rule descriptions that describe the rule rather than what it finds:
# "This query shows information about", "The following analytic detects", "Detects".
_LEAD_SUBJECT = re.compile(
    r"^(?:this|the following|the|a)\s+(?:[\w|-]+\s+){0,2}?"
    r"(?:query|queries|analytic|analytics|rule|hunt|search|detection|signature)\s+"
    r"(?:(?:is\s+(?:used|designed|intended|meant)|can\s+be\s+used|aims|attempts|tries|helps)"
    r"\s+(?:to\s+)?|will\s+|is\s+)?",
    re.IGNORECASE,
)
_LEAD_VERB = re.compile(
    r"^(?:detects?|detecting|identif(?:y|ies)|identifying|finds?|looks?\s+for|hunts?\s+for|"
    r"searches\s+for|search\s+for|monitors?(?:\s+for)?|shows?(?:\s+information\s+(?:about|on))?|"
    r"lists?|returns?|surfaces?|highlights?|alerts?\s+(?:on|when)|tracks?|flags?|checks?\s+for|"
    r"captures?|catch(?:es)?)\s+",
    re.IGNORECASE,
)
_ABOUT_ADVERSARY = re.compile(r"^(?:an? |the )?(?:adversar|attacker|threat actor)\w* may\b", re.I)
_CONDITION_WORD = re.compile(r"^(?:when|where|if|whether)\s+", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\"'])")
_MARKDOWN_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")


def describe_behaviour(facts: RuleFacts) -> str:
    """Return the behaviour the rule looks for as a noun phrase, from its description or title."""
    sentence = _first_sentence(facts.description)
    phrase = _strip_lead(sentence) if sentence else ""
    # Descriptions copied from ATT&CK ("Adversaries may ...") describe the technique, not
    # what this rule matches, so the title describes the rule better.
    if len(phrase.split()) < 2 or _ABOUT_ADVERSARY.match(phrase):
        return f'activity matching "{" ".join(facts.title.split())}"'
    if len(phrase) > 1 and phrase[0].isupper() and phrase[1].islower():
        phrase = phrase[0].lower() + phrase[1:]
    return _shorten(phrase, _BEHAVIOUR_MAX_CHARS)


def _first_sentence(text: str) -> str:
    text = _MARKDOWN_LINK.sub(r"\1", text)
    text = " ".join(text.replace("`", "").replace("**", "").split())
    return _SENTENCE_END.split(text, maxsplit=1)[0].rstrip(" .!?:;")


def _strip_lead(sentence: str) -> str:
    phrase = _LEAD_SUBJECT.sub("", sentence, count=1)
    phrase = _LEAD_VERB.sub("", phrase, count=1)
    if _CONDITION_WORD.match(phrase):
        phrase = "cases where " + _CONDITION_WORD.sub("", phrase, count=1)
    return phrase.strip()


# --- data sources -------------------------------------------------------------------------

_LANGUAGE_NAMES = {
    "kql": "KQL",
    "spl": "SPL",
    "sigma": "Sigma",
    "esql": "ES|QL",
    "eql": "EQL",
    "kuery": "KQL",
    "lucene": "Lucene",
}
# Kinds in the order they are preferred when a rule has several: the most specific first.
_KIND_ORDER = (
    "table",
    "logsource",
    "index",
    "splunk_data_source",
    "integration",
    "connector",
)


def describe_data(data_sources: Sequence[DataSourceRef], language: str) -> str:
    """Return "in <the tables or log sources>" for the most specific kind of data a rule reads."""
    if not data_sources:
        language_name = _LANGUAGE_NAMES.get(language.lower(), language)
        return f"with the rule's {language_name} query" if language_name else "in your logs"

    def rank(kind: str) -> int:
        return _KIND_ORDER.index(kind) if kind in _KIND_ORDER else len(_KIND_ORDER)

    kind = min((d.kind for d in data_sources), key=rank)
    names = list(dict.fromkeys(d.name for d in data_sources if d.kind == kind))
    shown = _join(_name_list(names))
    if kind == "table":
        return f"in the {shown} table" if len(names) == 1 else f"in the {shown} tables"
    if kind == "logsource":
        return "in " + _join([" ".join(name.split("/")) + " logs" for name in names[:3]])
    if kind == "index":
        return f"in the {shown} index" if len(names) == 1 else f"in the {shown} indices"
    if kind == "integration":
        return f"in {shown} integration data"
    if kind == "connector":
        return f"in data from the {shown} connector"
    return f"in {shown} data"


def _name_list(names: Sequence[str], limit: int = 3) -> list[str]:
    if len(names) <= limit:
        return list(names)
    return [*names[: limit - 1], f"{len(names) - limit + 1} more"]


# --- entities and benign activity -----------------------------------------------------------


@dataclass(frozen=True)
class _DataCategory:
    label: str
    pattern: re.Pattern[str]
    entities: tuple[str, ...]
    benign: str  # benign activity typical of this kind of data


# Checked in order against the rule's data source names, kinds and title.
_DATA_CATEGORIES = (
    _DataCategory(
        "email",
        re.compile(r"e-?mail|exchange|quarantine|phish|attachment|urlclick", re.I),
        ("messages", "recipients"),
        "bulk and marketing senders, mail flow rules and phishing simulations",
    ),
    _DataCategory(
        "sign-in",
        re.compile(r"sign-?in|logon|login|\baad|entra|identity|okta|auditlogs|authenticat", re.I),
        ("accounts", "sign-in sources"),
        "service accounts, VPN or proxy egress addresses and travelling users",
    ),
    _DataCategory(
        "registry",
        re.compile(r"registry", re.I),
        ("hosts", "registry keys"),
        "installers, group policy and security products",
    ),
    _DataCategory(
        "file",
        re.compile(r"file_|fileevent|file_event|image_?load|library|\bdll\b", re.I),
        ("hosts", "files"),
        "installers, updaters and backup software",
    ),
    _DataCategory(
        "process",
        re.compile(r"process|sysmon eventid 1\b|4688|command ?line", re.I),
        ("hosts", "accounts", "parent processes"),
        "software deployment and management agents such as SCCM, Intune or RMM tools",
    ),
    _DataCategory(
        "network",
        re.compile(r"network|dns|firewall|proxy|zeek|netflow|commonsecuritylog|connection", re.I),
        ("hosts", "remote addresses"),
        "vulnerability scanners, monitoring systems and content delivery networks",
    ),
    _DataCategory(
        "cloud",
        re.compile(r"cloudapp|officeactivity|azureactivity|cloudtrail|aws|gcp|sharepoint", re.I),
        ("accounts", "applications"),
        "automation, infrastructure-as-code pipelines and service principals",
    ),
)


def _data_categories(facts: RuleFacts) -> list[_DataCategory]:
    text = " ".join([*(f"{d.name} {d.kind}" for d in facts.data_sources), facts.title])
    return [category for category in _DATA_CATEGORIES if category.pattern.search(text)]


def scope_entities(facts: RuleFacts) -> list[str]:
    """Return what a hunter scopes for this rule (hosts, accounts, messages...), most apt first."""
    entities: list[str] = []
    for category in _data_categories(facts):
        entities.extend(category.entities)
    return list(dict.fromkeys(entities)) or ["hosts", "accounts"]


# Benign activity that matches rules of a technique family, keyed by technique id or parent.
_TECHNIQUE_BENIGN = {
    "T1566": "security staff releasing reviewed messages and phishing awareness campaigns",
    "T1059": "administrators' scripts, logon scripts and software deployment tools",
    "T1105": "software updaters, package managers and administrators downloading tools",
    "T1110": "users mistyping passwords and services still using an old password",
    "T1078": "travelling users, new devices and shared or service accounts",
    "T1003": "backup agents, security products and crash-dump tools reading memory",
    "T1046": "vulnerability scanners and network inventory tools",
    "T1021": "administrators and management tools connecting remotely",
    "T1053": "installers and updaters that register scheduled tasks",
    "T1047": "configuration management and monitoring agents using WMI",
    "T1574": "installers and portable applications that ship their own DLLs",
    "T1098": "identity administrators and provisioning systems changing accounts",
    "T1136": "onboarding and provisioning systems creating accounts",
    "T1562": "administrators changing security settings during maintenance",
    "T1070": "log rotation, maintenance scripts and disk clean-up",
    "T1114": "mail archiving, e-discovery and delegated mailbox access",
    "T1048": "backups and cloud sync clients uploading large amounts of data",
    "T1071": "software updaters and telemetry that connect at regular intervals",
}
_TACTIC_BENIGN = {
    "TA0043": "security teams and external attack surface monitoring",
    "TA0042": "legitimate registrations made by the organisation itself",
    "TA0001": "users on new devices or networks and newly onboarded services",
    "TA0002": "administrators' scripts and software deployment tools",
    "TA0003": "installers and updaters creating services, tasks and autoruns",
    "TA0004": "installers, patch management and administrators elevating on purpose",
    "TA0005": "security products, installers and packers used by legitimate software",
    "TA0112": "administrators changing security settings during maintenance",
    "TA0006": "password managers, backup agents and security products",
    "TA0007": "inventory tools, administrators and vulnerability scanners",
    "TA0008": "administrators and remote management tools",
    "TA0009": "backup, archiving and e-discovery tools",
    "TA0011": "software updaters, telemetry and remote support tools",
    "TA0010": "backups, cloud sync clients and large legitimate uploads",
    "TA0040": "maintenance jobs, backup rotation and administrators stopping services",
}


def template_false_positives(facts: RuleFacts) -> str:
    """Write false-positive guidance from the rule's technique, tactic and data."""
    technique = primary_technique(facts.techniques)
    tactic_id = _primary_tactic_id(facts, technique)
    sources: list[str] = []
    if technique is not None:
        family = _TECHNIQUE_BENIGN.get(technique.id.split(".")[0])
        if family:
            sources.append(family)
    if not sources and tactic_id is not None:
        sources.append(_TACTIC_BENIGN[tactic_id])
    if not sources:
        sources.append("administrators, IT automation and security tools doing the same thing")
    sentences = [f"Expect benign matches from {sources[0]}."]

    categories = _data_categories(facts)
    if categories:
        category = categories[0]
        sentences.append(f"In {category.label} data, {category.benign} match too.")

    entities = _join(scope_entities(facts)[:3])
    sentences.append(
        f"Baseline the {entities} that do this routinely and exclude them by exact value, "
        "not by broad patterns, so that new activity still shows up."
    )
    text = " ".join(sentences)
    return _fit(text, FALSE_POSITIVES_MAX_CHARS)


# --- text helpers ----------------------------------------------------------------------------


def _join(items: Sequence[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0].rstrip(" ,;:")
    return cut + "…"


def _fit(text: str, limit: int) -> str:
    """Return text within limit; templates stay under it, so this guards only odd input."""
    if len(text) <= limit:
        return text
    return _shorten(text, limit)
