"""Microsoft Sentinel YAML rules: analytic rules (scheduled, NRT), hunting queries, XDR detections.

A file under a ``Hunting Queries/`` path segment is a hunting query, and every other file
is a detection. ``rule.extra`` keeps Sentinel's own key names (queryFrequency,
entityMappings, ...). Two repairs let real files with known mistakes through, each with a
warning: tab characters outside block scalars become spaces, and a ``query: |`` block
whose lines start at column 0 is indented.
"""

from __future__ import annotations

import logging
import re
from pathlib import PurePosixPath
from typing import Any, cast

from socfeed.errors import ParseError
from socfeed.formats.base import (
    Format,
    ParsedFile,
    RuleFile,
    as_text,
    as_text_list,
    load_yaml_documents,
)
from socfeed.kql.mitre import map_tactics, map_techniques
from socfeed.kql.notes import RequiredConnector, connector_data_sources, describe_sources
from socfeed.kql.tables import read_query_sources
from socfeed.model import SEVERITIES, Rule, Severity, derive_rule_id

log = logging.getLogger(__name__)

# Keys that only analytic rules carry. A hunting query with them gets a warning instead.
ANALYTIC_KEYS = ("kind", "queryFrequency", "queryPeriod", "triggerOperator", "triggerThreshold")
# Keys mapped to Rule fields. Every other top-level key goes to rule.extra as written.
_MAPPED_KEYS = frozenset(
    {"id", "name", "description", "severity", "status", "tactics", "relevantTechniques"}
    | {"query", "tags", "metadata", "requiredDataConnectors"}
)
_METADATA_KEYS = ("source", "author", "support", "categories")
_TOP_LEVEL_KEYS = frozenset(
    {"id", "name", "description", "severity", "status", "requiredDataConnectors", "tactics"}
    | {"relevantTechniques", "query", "entityMappings", "version", "kind", "tags", "metadata"}
    | {"queryFrequency", "queryPeriod", "triggerOperator", "triggerThreshold", "customDetails"}
    | {"alertDetailsOverride", "eventGroupingSettings", "incidentConfiguration"}
    | {"suppressionEnabled", "suppressionDuration", "description-detailed"}
)
_BLOCK_SCALAR_HEADER = re.compile(r"(?:^|[\s:-])[|>][1-9+-]{0,2}\s*(?:#.*)?$")
_QUERY_HEADER = re.compile(r"^query:\s*[|>][1-9+-]{0,2}\s*$")
_TOP_LEVEL_KEY = re.compile(r"^([A-Za-z][\w-]*):(?:\s|$)")
_URL = re.compile(r"https?://[^\s'\"<>)\]]+")
_MIGRATION_STUB = re.compile(r"content migration", re.IGNORECASE)


def parse(file: RuleFile) -> ParsedFile:
    """Parse a Sentinel YAML file into rules, or raise ParseError when no rule can be read."""
    documents, load_warnings = _load_documents(file)
    if not documents:
        raise file.error("no query: the file is empty (it contains no YAML document)")
    result = ParsedFile()
    for index, (document, line) in enumerate(documents):
        try:
            rule = _build_rule(file, document, line, index)
        except ParseError as exc:
            if len(documents) == 1:
                raise
            result.errors.append(exc)
            continue
        rule.warnings[:0] = load_warnings
        result.rules.append(rule)
    return result


FORMAT = Format(name="sentinel", parse=parse)


# -- loading and repairs --------------------------------------------------------------


def _load_documents(file: RuleFile) -> tuple[list[tuple[Any, int]], list[str]]:
    """Load the YAML documents, trying the known repairs when the file does not parse."""
    try:
        return load_yaml_documents(file), []
    except ParseError as original:
        text, warnings = file.text, []
        for repair in (_replace_tabs, _indent_query_block):
            repaired, warning = repair(text)
            if warning:
                text = repaired
                warnings.append(warning)
        if not warnings:
            raise
        retry = RuleFile(file.source, file.path, text, file.context)
        try:
            documents = load_yaml_documents(retry)
        except ParseError:
            raise original from None
        log.info("repaired YAML in %s:%s: %s", file.source, file.path, "; ".join(warnings))
        return documents, warnings


def _replace_tabs(text: str) -> tuple[str, str]:
    """Replace tabs outside block scalars with spaces. Return (text, warning or "")."""
    lines = text.split("\n")
    positions: list[str] = []
    block_indent: int | None = None
    for number, line in enumerate(lines):
        indent = len(line) - len(line.lstrip(" "))
        if block_indent is not None and (not line.strip() or indent > block_indent):
            continue
        block_indent = None
        if "\t" in line:
            positions.extend(f"{number + 1}:{column + 1}" for column in _tab_columns(line))
            line = line.replace("\t", " ")
            lines[number] = line
        if _BLOCK_SCALAR_HEADER.search(line.split(" #")[0].rstrip()):
            block_indent = indent
    if not positions:
        return text, ""
    where = ", ".join(positions[:5]) + (
        f" and {len(positions) - 5} more" if len(positions) > 5 else ""
    )
    warning = (
        f"replaced tab characters with spaces at line:column {where}, because YAML does not "
        "allow tabs there; tabs inside block scalars such as the query were kept"
    )
    return "\n".join(lines), warning


def _tab_columns(line: str) -> list[int]:
    return [column for column, char in enumerate(line) if char == "\t"]


def _indent_query_block(text: str) -> tuple[str, str]:
    """Indent a ``query: |`` block whose lines start at column 0, up to the next known key."""
    lines = text.split("\n")
    for number, line in enumerate(lines):
        if not _QUERY_HEADER.match(line.rstrip()):
            continue
        end = number + 1
        while end < len(lines):
            key = _TOP_LEVEL_KEY.match(lines[end])
            if key and key.group(1) in _TOP_LEVEL_KEYS:
                break
            end += 1
        body = [candidate for candidate in lines[number + 1 : end] if candidate.strip()]
        if not body or body[0].startswith((" ", "\t")):
            return text, ""
        lines[number + 1 : end] = [
            f"  {candidate}" if candidate else "" for candidate in lines[number + 1 : end]
        ]
        warning = (
            f"the query block scalar at line {number + 1} is not indented; read lines "
            f"{number + 2} to {end} as the query"
        )
        return "\n".join(lines), warning
    return text, ""


# -- rules ------------------------------------------------------------------------------


def _build_rule(file: RuleFile, data: Any, line: int, index: int) -> Rule:
    if not isinstance(data, dict):
        kind = type(data).__name__
        raise file.error(f"no query: the YAML document is a {kind}, not a Sentinel rule", line)
    if isinstance(data.get("properties"), dict) and "schemaVersion" in data:
        return _xdr_rule(file, data, line, index)
    query = data.get("query")
    if not isinstance(query, str) or not query.strip():
        raise file.error(_no_query_reason(data), line)
    rule = _new_rule(file, data, query, line, index)
    _set_attack(rule, as_text_list(data.get("tactics")), _technique_values(data))
    _set_tags(rule, data.get("tags"))
    _set_metadata(rule, data)
    _set_extra(rule, data)
    connectors = _required_connectors(rule, data.get("requiredDataConnectors"))
    _set_data_sources(rule, connectors)
    return rule


def _no_query_reason(data: dict[str, Any]) -> str:
    description = as_text(data.get("description"))
    if _MIGRATION_STUB.search(description):
        urls = _URL.findall(description)
        target = f" that points to {urls[0].rstrip('.')}" if urls else ""
        return f"no query: the file is a content-migration stub{target}"
    if "query" in data:
        return f"no query: the 'query' field is empty or not text ({type(data['query']).__name__})"
    keys = ", ".join(str(key) for key in list(data)[:8])
    return f"no query: the file has no 'query' field (its keys are {keys})"


def _new_rule(file: RuleFile, data: dict[str, Any], query: str, line: int, index: int) -> Rule:
    kind, kind_reason = _rule_kind(file.path)
    rule = Rule(
        source=file.source,
        path=file.path,
        rule_id=as_text(data.get("id")),
        format="sentinel",
        title=as_text(data.get("name")),
        language="kql",
        kind=kind,
        query=query.strip("\n"),
        raw_text=file.text,
        status=as_text(data.get("status")) or None,
        query_index=index,
        line=line,
    )
    rule.provenance["kind"] = kind_reason
    rule.provenance["language"] = "derived: Sentinel rules are written in KQL"
    if not rule.rule_id:
        rule.rule_id = derive_rule_id(file.source, file.path, index)
        rule.provenance["rule_id"] = "derived: no id in the file; hashed from source and path"
        rule.warnings.append("the rule has no id; a stable id was derived from its path")
    if not rule.title:
        rule.title = PurePosixPath(file.path).stem
        rule.provenance["title"] = "derived: no name in the file; the file name"
        rule.warnings.append("the rule has no name; the file name is used as title")
    _set_description(rule, as_text(data.get("description")))
    _set_severity(rule, data.get("severity"))
    return rule


def _rule_kind(path: str) -> tuple[Any, str]:
    segments = [segment.casefold() for segment in PurePosixPath(path).parts[:-1]]
    if "hunting queries" in segments:
        return "hunting", "derived: the path has a 'Hunting Queries' folder"
    return "detection", "derived: the path has no 'Hunting Queries' folder"


def _set_description(rule: Rule, description: str) -> None:
    # Sentinel descriptions are often wrapped in single quotes inside a block scalar.
    if len(description) > 1 and description.startswith("'") and description.endswith("'"):
        description = description[1:-1].strip()
        rule.provenance["description"] = "derived: the surrounding single quotes removed"
    rule.description = description
    urls = list(dict.fromkeys(url.rstrip(".,;") for url in _URL.findall(description)))
    if urls:
        rule.references = urls
        rule.provenance["references"] = "derived: the URLs written in the description"


def _set_severity(rule: Rule, value: Any) -> None:
    text = as_text(value)
    if not text:
        return
    if text.lower() in SEVERITIES:
        rule.severity = cast(Severity, text.lower())
        if text != rule.severity:
            rule.provenance["severity"] = f"derived: {text!r} lower-cased"
        return
    rule.warnings.append(f"severity {text!r} is not one of {', '.join(SEVERITIES)}; left empty")
    rule.extra["severity"] = text


def _technique_values(data: dict[str, Any]) -> list[str]:
    return as_text_list(data.get("relevantTechniques"))


def _set_attack(rule: Rule, tactic_values: list[str], technique_values: list[str]) -> None:
    tactics, unknown_tactics = map_tactics(tactic_values)
    rule.tactics = tactics
    if tactics and tactics != tactic_values:
        rule.provenance["tactics"] = "derived: tactic names mapped to ATT&CK display names"
    if unknown_tactics:
        rule.extra["unmapped_tactics"] = unknown_tactics
        listed = _listed("tactic", unknown_tactics)
        rule.warnings.append(f"{listed} no ATT&CK tactic; kept in extra")
    techniques, invalid = map_techniques(technique_values)
    rule.techniques = techniques
    if techniques != technique_values[: len(techniques)] or invalid:
        rule.provenance["techniques"] = "derived: technique ids normalized"
    if invalid:
        rule.extra["invalid_techniques"] = invalid
        rule.warnings.append(f"{_listed('technique', invalid)} no ATT&CK technique id; skipped")


def _listed(noun: str, values: list[str]) -> str:
    """Return "tactic 'X' names" or "tactics 'X', 'Y' name", to start a sentence."""
    quoted = ", ".join(repr(value) for value in values)
    return f"{noun} {quoted} names" if len(values) == 1 else f"{noun}s {quoted} name"


def _set_tags(rule: Rule, tags: Any) -> None:
    if tags is None:
        return
    items = tags if isinstance(tags, list) else [tags]
    rule.tags = [
        str(tag).strip() for tag in items if isinstance(tag, str | int) and str(tag).strip()
    ]
    objects = [tag for tag in items if isinstance(tag, dict)]
    if objects:
        # Tags such as {Schema: ASIMDns, SchemaVersion: 0.1.1} are structured, not labels.
        rule.extra["tag_objects"] = objects


def _set_metadata(rule: Rule, data: dict[str, Any]) -> None:
    if "metadata" not in data:
        return
    metadata = data["metadata"]
    if metadata is None and any(key in data for key in _METADATA_KEYS):
        metadata = {key: data[key] for key in _METADATA_KEYS if key in data}
        rule.warnings.append(
            f"the metadata block is empty and its fields ({', '.join(metadata)}) are at the "
            f"top level, probably mis-indented (line {_key_line(rule.raw_text, 'metadata')}); "
            "they were read from there"
        )
        rule.provenance["author"] = "derived: top-level author.name of a malformed metadata block"
    if not isinstance(metadata, dict):
        if metadata is not None:
            kind = type(metadata).__name__
            rule.warnings.append(f"metadata is a {kind}, not a mapping; ignored")
        return
    rule.extra["metadata"] = metadata
    author = metadata.get("author")
    rule.author = as_text(author.get("name") if isinstance(author, dict) else author)


def _key_line(text: str, key: str) -> int | None:
    match = re.search(rf"^{re.escape(key)}\s*:", text, re.MULTILINE)
    return text.count("\n", 0, match.start()) + 1 if match else None


def _set_extra(rule: Rule, data: dict[str, Any]) -> None:
    ignored: list[str] = []
    for key, value in data.items():
        if key in _MAPPED_KEYS or (key in _METADATA_KEYS and "metadata" in rule.extra):
            continue
        if rule.kind == "hunting" and key in ANALYTIC_KEYS:
            ignored.append(f"{key}: {value}")
            continue
        rule.extra[str(key)] = value
    if ignored:
        rule.warnings.append(
            f"a hunting query carries analytic-rule fields ({', '.join(ignored)}); ignored"
        )


def _required_connectors(rule: Rule, value: Any) -> list[RequiredConnector]:
    """Read requiredDataConnectors, accepting the lower-case ``datatypes`` key too."""
    if value is None:
        return []
    entries = value if isinstance(value, list) else [value]
    connectors: list[RequiredConnector] = []
    normalized: list[dict[str, Any]] = []
    for position, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict):
            rule.warnings.append(
                f"requiredDataConnectors entry {position} is not a mapping; ignored"
            )
            continue
        connector_id = entry.get("connectorId")
        data_types = as_text_list(entry.get("dataTypes", entry.get("datatypes")))
        if not isinstance(connector_id, str) or not connector_id.strip():
            rule.warnings.append(
                f"requiredDataConnectors entry {position} has no connectorId; ignored"
            )
            continue
        connectors.append(RequiredConnector(connector_id.strip(), tuple(data_types)))
        normalized.append({"connectorId": connector_id.strip(), "dataTypes": data_types})
    rule.extra["requiredDataConnectors"] = normalized
    return connectors


def _set_data_sources(rule: Rule, connectors: list[RequiredConnector]) -> None:
    sources = read_query_sources(rule.query)
    rule.data_sources = describe_sources(sources, connectors) + connector_data_sources(connectors)
    if sources.externaldata_urls:
        rule.extra["externaldata_urls"] = sources.externaldata_urls
    if rule.data_sources:
        rule.provenance["data_sources"] = (
            "derived: tables read from the KQL query, with notes from requiredDataConnectors "
            "or the known-table list; connectors copied from requiredDataConnectors"
        )


def _xdr_rule(file: RuleFile, data: dict[str, Any], line: int, index: int) -> Rule:
    """Build a rule from a Defender XDR custom detection (schemaVersion and properties)."""
    properties: dict[str, Any] = data["properties"]
    condition = properties.get("queryCondition")
    query = condition.get("queryText") if isinstance(condition, dict) else None
    if not isinstance(query, str) or not query.strip():
        raise file.error(
            "no query: this Defender XDR custom detection has no properties.queryCondition."
            "queryText",
            line,
        )

    action = properties.get("detectionAction")
    template = action.get("alertTemplate") if isinstance(action, dict) else None
    template = template if isinstance(template, dict) else {}
    fields = {
        "id": properties.get("id"),
        "name": properties.get("displayName") or template.get("title"),
        "description": template.get("description"),
        "severity": template.get("severity"),
        "status": properties.get("status"),
    }

    rule = _new_rule(file, fields, query, line, index)
    tactic_values, technique_values = _xdr_attack(template.get("tactics"))
    _set_attack(rule, tactic_values, technique_values)

    rule.extra["schemaVersion"] = data.get("schemaVersion")
    rule.extra["kind"] = data.get("kind")
    for key in ("apiVersion", "resourceType", "contentProvenance"):
        if key in data:
            rule.extra[key] = data[key]
    for key in ("schedule", "isEnabled"):
        if key in properties:
            rule.extra[key] = properties[key]
    if "entityMappings" in template:
        rule.extra["entityMappings"] = template["entityMappings"]

    _set_data_sources(rule, [])
    return rule


def _xdr_attack(tactics: Any) -> tuple[list[str], list[str]]:
    tactic_values: list[str] = []
    technique_values: list[str] = []
    for entry in tactics if isinstance(tactics, list) else []:
        if not isinstance(entry, dict):
            continue
        tactic_values.extend(as_text_list(entry.get("tactic")))
        for technique in entry.get("techniques") or []:
            if isinstance(technique, dict):
                technique_values.extend(as_text_list(technique.get("technique")))
    return tactic_values, technique_values
