"""Parse Splunk security_content detections, resolving stories, macros and data sources."""

from __future__ import annotations

import datetime as dt
import difflib
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from socfeed.attack.ids import normalize_technique_id
from socfeed.errors import ParseError
from socfeed.formats.base import (
    Format,
    ParsedFile,
    RuleFile,
    as_text,
    as_text_list,
    decode_rule_bytes,
    iso_date,
    load_yaml_documents,
)
from socfeed.model import DataSource, Rule, derive_rule_id

logger = logging.getLogger(__name__)

_DEPRECATED_FOLDER = "detections/deprecated/"
_CONTEXT_FOLDERS = {"stories": "stories", "macros": "macros", "data_sources": "data_sources"}

# Risk score bands of Splunk's contentctl (DetectionTags.severity and rba_object.severity):
# 0-20 informational, 21-40 low, 41-60 medium, 61-80 high, 81-100 critical.
_RISK_BANDS = ((20, "informational"), (40, "low"), (60, "medium"), (80, "high"), (100, "critical"))
_BANDS_TEXT = "0-20 informational, 21-40 low, 41-60 medium, 61-80 high, 81-100 critical"

_SPL_COMMENT = re.compile(r"```.*?```", re.S)
_MACRO_CALL = re.compile(r"`([A-Za-z0-9_.:-]+)(?:\([^`]*\))?`")
# Data source names that join two sources a detection needs together.
_DATA_SOURCE_JOIN = re.compile(r"\s+AND\s+")

# tags entries kept for the rule page.
_EXTRA_TAG_KEYS = (
    "asset_type",
    "security_domain",
    "message",
    "observable",
    "required_fields",
    "product",
    "confidence",
    "impact",
    "risk_score",
    "cve",
    "atomic_guid",
)


def load_context(root: Path) -> Mapping[str, Any]:
    """Read the stories, macros and data source definitions of a security_content checkout.

    Returns {"stories": {name: {...}}, "macros": {...}, "data_sources": {...}}, keyed by
    each definition's name. A file that fails to parse is logged and skipped.
    """
    context: dict[str, dict[str, dict[str, Any]]] = {}
    for key, folder in _CONTEXT_FOLDERS.items():
        definitions: dict[str, dict[str, Any]] = {}
        for path in sorted((root / folder).rglob("*.yml")):
            definition = _read_definition(root, path)
            if definition is not None:
                definitions[as_text(definition["name"])] = definition
        context[key] = definitions
    logger.info(
        "loaded Splunk context root=%s stories=%d macros=%d data_sources=%d",
        root,
        len(context["stories"]),
        len(context["macros"]),
        len(context["data_sources"]),
    )
    return context


def _read_definition(root: Path, path: Path) -> dict[str, Any] | None:
    relative = path.relative_to(root).as_posix()
    try:
        text = decode_rule_bytes(path.read_bytes(), root.name, relative)
        documents = load_yaml_documents(RuleFile(source=root.name, path=relative, text=text))
    except (OSError, ParseError) as error:
        logger.warning("skipped Splunk context file path=%s error=%s", relative, error)
        return None
    if len(documents) != 1 or not isinstance(documents[0][0], dict):
        logger.warning("skipped Splunk context file path=%s error=not one YAML mapping", relative)
        return None
    definition: dict[str, Any] = documents[0][0]
    if not as_text(definition.get("name")):
        logger.warning("skipped Splunk context file path=%s error=no name", relative)
        return None
    return definition


def parse(file: RuleFile) -> ParsedFile:
    """Parse one detection YAML file into a rule."""
    documents = load_yaml_documents(file)
    if not documents:
        raise file.error("the file contains no YAML document")
    data, line = documents[0]
    if not isinstance(data, dict):
        raise file.error(f"the detection is a YAML {type(data).__name__}, not a mapping", line)

    result = ParsedFile(rules=[_build_rule(file, data, line)])
    for _, extra_line in documents[1:]:
        reason = "extra YAML document after the detection; only the first one is read"
        result.errors.append(file.error(reason, extra_line))
    return result


def _build_rule(file: RuleFile, data: dict[str, Any], line: int) -> Rule:
    name = as_text(data.get("name"))
    search = data.get("search")
    if not name:
        raise file.error("the detection is missing the name field", line)
    if not isinstance(search, str) or not search.strip():
        raise file.error("the detection is missing the search field", line)
    tags: dict[str, Any] = data["tags"] if isinstance(data.get("tags"), dict) else {}
    rule_type = as_text(data.get("type"))

    rule = Rule(
        source=file.source,
        path=file.path,
        rule_id=as_text(data.get("id")),
        format="splunk",
        title=name,
        language="spl",
        kind="hunting" if rule_type.lower() == "hunting" else "detection",
        query=search.strip(),
        raw_text=file.text,
        description=as_text(data.get("description")),
        author=as_text(data.get("author")),
        status=as_text(data.get("status")) or None,
        references=as_text_list(data.get("references")),
        false_positives=as_text_list(data.get("known_false_positives")),
        line=line,
    )
    rule.provenance["language"] = "derived: Splunk detections are SPL searches"
    rule.provenance["kind"] = (
        f"derived: type {rule_type!r}; only Hunting detections are hunting rules"
    )
    if not rule.rule_id:
        rule.rule_id = derive_rule_id(file.source, file.path)
        rule.provenance["rule_id"] = "derived: derive_rule_id from source and path"
        rule.warnings.append("the detection has no id; the id is derived from the file path")

    _set_status(rule)
    _set_dates(rule, data)
    _set_severity(rule, data, tags)
    _set_techniques(rule, tags.get("mitre_attack_id"))
    _set_stories(rule, as_text_list(tags.get("analytic_story")), file.context)
    _set_data_sources(rule, data, file.context)
    _set_macros(rule, file.context)
    _set_tags(rule, tags)
    rule.extra.update(
        {
            "type": rule_type,
            "version": data.get("version"),
            "how_to_implement": as_text(data.get("how_to_implement")),
        }
    )
    rule.extra.update({key: _plain(tags[key]) for key in _EXTRA_TAG_KEYS if key in tags})
    for key in ("rba", "datamodel", "drilldown_searches"):
        if data.get(key):
            rule.extra[key] = _plain(data[key])
    return rule


def _set_status(rule: Rule) -> None:
    if rule.path.startswith(_DEPRECATED_FOLDER) and rule.status != "deprecated":
        rule.status = "deprecated"
        rule.provenance["status"] = f"derived: the file is under {_DEPRECATED_FOLDER}"


def _set_dates(rule: Rule, data: dict[str, Any]) -> None:
    """Read the date field, which security_content updates with every new version."""
    date, warning = iso_date(data.get("date"))
    if warning:
        rule.warnings.append(f"field 'date': {warning}")
    if date is None:
        return
    version = data.get("version")
    rule.modified = date
    rule.provenance["modified"] = (
        f"inferred: date of version {version}, as security_content updates date with version"
    )
    if version == 1:
        rule.created = date
        rule.provenance["created"] = "derived: date of version 1, the first version"


def _set_severity(rule: Rule, data: dict[str, Any], tags: dict[str, Any]) -> None:
    """Map the risk score to a severity with contentctl's bands; Splunk files give no severity."""
    score, origin = _risk_score(data, tags)
    if score is None:
        rule.warnings.append("no risk score, rba or confidence/impact; severity left empty")
        return
    if not 0 <= score <= 100:
        rule.warnings.append(f"risk score {score} is outside 0-100; severity left empty")
        return
    rule.severity = next(severity for limit, severity in _RISK_BANDS if score <= limit)
    rule.provenance["severity"] = (
        f"derived: risk score {score:g} from {origin}, with contentctl's bands ({_BANDS_TEXT})"
    )

    confidence, impact = _number(tags.get("confidence")), _number(tags.get("impact"))
    listed = _number(tags.get("risk_score"))
    if listed is not None and confidence is not None and impact is not None:
        computed = round(confidence * impact / 100)
        if computed != listed:
            rule.warnings.append(
                f"tags.risk_score {listed:g} differs from confidence x impact / 100 = {computed}"
            )


def _risk_score(data: dict[str, Any], tags: dict[str, Any]) -> tuple[float | None, str]:
    """Return the score contentctl would band, and where it came from."""
    rba = data.get("rba")
    if isinstance(rba, dict) and isinstance(rba.get("risk_objects"), list):
        scores = [
            score
            for item in rba["risk_objects"]
            if isinstance(item, dict) and (score := _number(item.get("score"))) is not None
        ]
        if scores:
            return max(scores), "the highest rba.risk_objects score"
    listed = _number(tags.get("risk_score"))
    if listed is not None:
        return listed, "tags.risk_score"
    confidence, impact = _number(tags.get("confidence")), _number(tags.get("impact"))
    if confidence is not None and impact is not None:
        return round(confidence * impact / 100), "tags.confidence x tags.impact / 100"
    return None, ""


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


def _set_techniques(rule: Rule, value: Any) -> None:
    unknown: list[str] = []
    for item in as_text_list(value):
        technique = normalize_technique_id(item)
        if technique:
            rule.techniques.append(technique)
        else:
            unknown.append(repr(item))
    rule.techniques = list(dict.fromkeys(rule.techniques))
    if unknown:
        rule.warnings.append(f"tags.mitre_attack_id values not mapped: {', '.join(unknown)}")


def _set_stories(rule: Rule, names: list[str], context: Mapping[str, Any]) -> None:
    """Store each analytic story with its description from stories/."""
    definitions: Mapping[str, Any] = context.get("stories") or {}
    stories: list[dict[str, str]] = []
    missing: list[str] = []
    for name in names:
        story = definitions.get(name)
        if story is None and definitions:
            missing.append(repr(name))
        story = story or {}
        stories.append(
            {
                "name": name,
                "id": as_text(story.get("id")),
                "description": as_text(story.get("description")),
            }
        )
    if stories:
        rule.extra["analytic_stories"] = stories
    if missing:
        rule.warnings.append(f"analytic stories not defined in stories/: {', '.join(missing)}")


def _set_data_sources(rule: Rule, data: dict[str, Any], context: Mapping[str, Any]) -> None:
    names = as_text_list(data.get("data_source"))
    if not names and data.get("data_sources"):
        names = as_text_list(data.get("data_sources"))
        rule.warnings.append(
            "data sources are listed under 'data_sources', a key Splunk does not read; "
            "the key is 'data_source'"
        )
    definitions: Mapping[str, Any] = context.get("data_sources") or {}
    missing: list[str] = []
    for listed in names:
        parts = _DATA_SOURCE_JOIN.split(listed)
        for name in parts:
            definition = definitions.get(name)
            if definition is None and definitions:
                missing.append(_with_close_match(name, definitions))
            source = _data_source(name, definition or {})
            if len(parts) > 1:
                source.origin = f"derived: one part of {listed!r}"
            rule.data_sources.append(source)
    if missing:
        rule.warnings.append(
            f"data sources not defined in data_sources/, so their sourcetype and add-on are "
            f"unknown: {', '.join(missing)}"
        )


def _with_close_match(name: str, definitions: Mapping[str, Any]) -> str:
    matches = difflib.get_close_matches(name, list(definitions), n=1, cutoff=0.8)
    return f"{name!r} (closest defined: {matches[0]!r})" if matches else repr(name)


def _data_source(name: str, definition: Mapping[str, Any]) -> DataSource:
    """Build a data source with the collection details of its data_sources/ definition."""
    add_ons = [
        {"name": as_text(ta.get("name")), "url": as_text(ta.get("url"))}
        for ta in definition.get("supported_TA") or []
        if isinstance(ta, dict)
    ]
    details = {
        "sourcetype": as_text(definition.get("sourcetype")),
        "source": as_text(definition.get("source")),
        "separator": as_text(definition.get("separator")),
        "supported_add_ons": add_ons,
        "configuration": as_text(definition.get("configuration")),
    }
    details = {key: value for key, value in details.items() if value}
    return DataSource(
        kind="splunk_data_source",
        name=name,
        note=_collection_note(details) if definition else "",
        origin="source: data_source",
        details=details,
    )


def _collection_note(details: dict[str, Any]) -> str:
    parts = []
    if details.get("sourcetype"):
        parts.append(f"sourcetype {details['sourcetype']}")
    if details.get("source"):
        parts.append(f"source {details['source']}")
    note = f"Collect {' from '.join(parts) or 'these events'}"
    if details.get("separator"):
        note += f", told apart by the {details['separator']} field"
    add_ons = [
        f"{add_on['name'] or 'add-on'} ({add_on['url']})" if add_on["url"] else add_on["name"]
        for add_on in details.get("supported_add_ons", [])
    ]
    if add_ons:
        note += f", with {' or '.join(add_on for add_on in add_ons if add_on)}"
    if details.get("configuration"):
        note += f"; configuration: {details['configuration']}"
    return note + "."


def _set_macros(rule: Rule, context: Mapping[str, Any]) -> None:
    """List the macros the search calls with their definitions from macros/."""
    definitions: Mapping[str, Any] = context.get("macros") or {}
    called = _MACRO_CALL.findall(_SPL_COMMENT.sub("", rule.query))
    resolved: dict[str, str] = {}
    undefined: list[str] = []
    for name in dict.fromkeys(called):
        if name.endswith("_filter"):
            continue  # each detection's empty tuning macro, defined by the customer
        definition = definitions.get(name)
        if definition is not None:
            resolved[name] = as_text(definition.get("definition"))
        else:
            undefined.append(name)
    if resolved:
        rule.extra["macros"] = resolved
    if undefined and definitions:
        # Macros such as drop_dm_object_name come with Splunk apps, not with macros/.
        rule.extra["macros_not_in_source"] = undefined


def _set_tags(rule: Rule, tags: dict[str, Any]) -> None:
    values = [f"Analytic Story: {story}" for story in as_text_list(tags.get("analytic_story"))]
    if as_text(tags.get("asset_type")):
        values.append(f"Asset Type: {as_text(tags.get('asset_type'))}")
    if as_text(tags.get("security_domain")):
        values.append(f"Security Domain: {as_text(tags.get('security_domain'))}")
    values.extend(as_text_list(tags.get("cve") or tags.get("CVE")))
    rule.tags = list(dict.fromkeys(values))
    if rule.tags:
        rule.provenance["tags"] = (
            "derived: tags.analytic_story, asset_type, security_domain and cve"
        )


def _plain(value: Any) -> Any:
    """Return YAML data with dates as ISO strings, so it serializes to JSON."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


FORMAT = Format(name="splunk", parse=parse, load_context=load_context)
