"""Parse Elastic detection-rules TOML files: detection rules and hunting queries."""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from typing import Any

from socfeed.attack.ids import normalize_technique_id, tactic_by_any, tactic_order
from socfeed.errors import ParseError
from socfeed.formats.base import Format, ParsedFile, RuleFile, as_text, as_text_list, iso_date
from socfeed.model import SEVERITIES, DataSource, Rule, derive_rule_id

_BUILDING_BLOCK_FOLDER = "rules_building_block/"
_BUILDING_BLOCK_TAG = "building block"

# Rule languages as Elastic writes them -> the language names socfeed uses. Hunting files
# write SQL for osquery queries (hunting/README.md of detection-rules).
_LANGUAGES = {
    "kuery": "kuery",
    "kql": "kuery",
    "eql": "eql",
    "esql": "esql",
    "es|ql": "esql",
    "lucene": "lucene",
    "sql": "osquery",
}

# Upper risk score of each severity, used only when a rule gives no valid severity. Kibana
# proposes 21, 47, 73 and 99 as the default risk score of low, medium, high and critical
# rules, and the detection-rules corpus uses exactly these pairs.
# NOTE: reading everything up to a default as that severity is an assumption, not Kibana's.
_RISK_BANDS = ((21, "low"), (47, "medium"), (73, "high"), (100, "critical"))

_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")
_TOML_AT_END = re.compile(r"\s*\(at end of document\)$")
_ESQL_FROM = re.compile(r"^\s*from\s+(.+?)(?=\s+metadata\s|\s*\||\s*$)", re.I | re.M | re.S)
_ESQL_COMMENT = re.compile(r"//[^\n]*")
_ATLAS_ID = re.compile(r"^AML\.T\d{4}(?:\.\d{3})?$", re.IGNORECASE)

# [rule] keys kept for the rule page. Keys that map to Rule fields are left out.
_EXTRA_RULE_KEYS = (
    "risk_score",
    "type",
    "note",
    "setup",
    "from",
    "interval",
    "max_signals",
    "timestamp_override",
    "building_block_type",
    "machine_learning_job_id",
    "anomaly_threshold",
    "new_terms",
    "threshold",
    "threat_index",
    "threat_query",
    "threat_language",
    "threat_mapping",
    "threat_indicator_path",
    "investigation_fields",
    "alert_suppression",
    "severity_mapping",
    "risk_score_mapping",
    "rule_name_override",
    "filters",
    "license",
)
_EXTRA_METADATA_KEYS = ("min_stack_version", "deprecation_date", "deprecated_reason")


def parse(file: RuleFile) -> ParsedFile:
    """Parse an Elastic TOML file: a detection rule or a hunting file with several queries."""
    try:
        data = tomllib.loads(file.text)
    except tomllib.TOMLDecodeError as error:
        raise _toml_error(file, error) from error

    hunt = data.get("hunt")
    if isinstance(hunt, dict):
        return _hunting_rules(file, hunt, _table_line(file.text, "hunt"))
    rule = data.get("rule")
    if isinstance(rule, dict):
        metadata = data.get("metadata")
        metadata = metadata if isinstance(metadata, dict) else {}
        line = _table_line(file.text, "rule")
        return ParsedFile(rules=[_detection_rule(file, rule, metadata, line)])
    raise file.error("no [rule] or [hunt] table; this is not an Elastic rule file")


def _toml_error(file: RuleFile, error: tomllib.TOMLDecodeError) -> ParseError:
    """Turn a tomllib error into a ParseError with the line and column from its message."""
    message = str(error)
    line: int | None = None
    column: int | None = None
    match = _TOML_POSITION.search(message)
    if match:
        line, column = int(match.group(1)), int(match.group(2))
        message = message[: match.start()]
    elif _TOML_AT_END.search(message):
        line = max(1, len(file.text.splitlines()))
        message = _TOML_AT_END.sub("", message)
    reason = f"invalid TOML: {message}"
    if message.startswith("Unescaped '\\'"):
        column = _backslash_column(file.text, line, column)
        reason += (
            '; in a TOML basic string ("..." or """...""") write a backslash as \\\\, '
            "or use a literal string ('''...''') for queries"
        )
    return file.error(reason, line, column)


def _backslash_column(text: str, line: int | None, column: int | None) -> int | None:
    """Return the column of the backslash itself; tomllib reports the end of the sequence."""
    if line is None or column is None:
        return column
    lines = text.splitlines()
    if line > len(lines):
        return column
    found = lines[line - 1].rfind("\\", 0, column)
    return found + 1 if found >= 0 else column


def _table_line(text: str, name: str) -> int:
    """Return the line of a table's [name] header, or 1 when it is written inline."""
    match = re.search(rf"^[ \t]*\[{name}\]", text, re.M)
    return text.count("\n", 0, match.start()) + 1 if match else 1


def _detection_rule(
    file: RuleFile, table: dict[str, Any], metadata: dict[str, Any], line: int
) -> Rule:
    """Map a [rule] table and its [metadata] to the rule model."""
    name = as_text(table.get("name"))
    if not name:
        raise file.error("[rule] table is missing the name field", line)
    rule = Rule(
        source=file.source,
        path=file.path,
        rule_id=as_text(table.get("rule_id")),
        format="elastic",
        title=name,
        language="",
        kind="detection",
        query="",
        raw_text=file.text,
        description=as_text(table.get("description")),
        author=", ".join(as_text_list(table.get("author"))),
        status=as_text(metadata.get("maturity")) or None,
        tags=as_text_list(table.get("tags")),
        references=as_text_list(table.get("references")),
        false_positives=as_text_list(table.get("false_positives")),
        line=line,
    )
    rule.provenance["kind"] = "derived: Elastic [rule] files are detection rules"
    if not rule.rule_id:
        rule.rule_id = derive_rule_id(file.source, file.path)
        rule.provenance["rule_id"] = "derived: derive_rule_id from source and path"
        rule.warnings.append("[rule] has no rule_id; the id is derived from the file path")

    _set_query(file, rule, table, line)
    _set_dates(rule, metadata)
    _set_severity(rule, table)
    _set_threat(rule, table.get("threat"))
    _set_building_block(rule, table)
    _set_data_sources(rule, table, metadata)
    rule.extra.update(_picked(table, _EXTRA_RULE_KEYS))
    rule.extra.update(_picked(metadata, _EXTRA_METADATA_KEYS))
    return rule


def _set_query(file: RuleFile, rule: Rule, table: dict[str, Any], line: int) -> None:
    rule_type = as_text(table.get("type"))
    language = as_text(table.get("language")).lower()
    if rule_type == "machine_learning":
        jobs = ", ".join(repr(job) for job in as_text_list(table.get("machine_learning_job_id")))
        rule.warnings.append(
            f"machine-learning rule: alerts come from the anomaly detection job {jobs or '(none)'}"
            " and there is no query to show"
        )
        return

    query = table.get("query")
    if not isinstance(query, str) or not query.strip():
        raise file.error(
            f"[rule] of type {rule_type or '(none)'!r} is missing the query field", line
        )
    rule.query = query.strip()
    if not language and rule_type == "esql":
        language = "esql"
        rule.provenance["language"] = "derived: rule type esql"
    rule.language = _LANGUAGES.get(language, language)
    if rule.language != language:
        rule.provenance["language"] = f"derived: language {language!r}"
    if not rule.language:
        rule.warnings.append(f"[rule] of type {rule_type!r} names no query language")


def _set_dates(rule: Rule, metadata: dict[str, Any]) -> None:
    for key, attribute in (("creation_date", "created"), ("updated_date", "modified")):
        date, warning = iso_date(metadata.get(key))
        setattr(rule, attribute, date)
        if warning:
            rule.warnings.append(f"metadata.{key}: {warning}")


def _set_severity(rule: Rule, table: dict[str, Any]) -> None:
    severity = as_text(table.get("severity")).lower()
    if severity in SEVERITIES:
        rule.severity = severity
        return
    if severity:
        rule.warnings.append(f"severity {severity!r} is not a known severity")
    score = table.get("risk_score")
    banded = _severity_for_score(score)
    if banded is not None:
        rule.severity = banded
        rule.provenance["severity"] = (
            f"inferred: risk_score {score} read against Kibana's default scores "
            "(low 21, medium 47, high 73, critical 99)"
        )


def _severity_for_score(score: Any) -> str | None:
    if isinstance(score, bool) or not isinstance(score, int | float) or not 0 <= score <= 100:
        return None
    return next(severity for limit, severity in _RISK_BANDS if score <= limit)


def _set_threat(rule: Rule, threat: Any) -> None:
    """Read tactics, techniques and sub-techniques from the [[rule.threat]] blocks."""
    blocks = threat if isinstance(threat, list) else []
    tactics: list[str] = []
    unknown: list[str] = []
    for block in blocks:
        if not isinstance(block, dict) or block.get("framework", "MITRE ATT&CK") != "MITRE ATT&CK":
            continue
        tactic: dict[str, Any] = block["tactic"] if isinstance(block.get("tactic"), dict) else {}
        found = tactic_by_any(as_text(tactic.get("id"))) or tactic_by_any(
            as_text(tactic.get("name"))
        )
        if found:
            tactics.append(found.name)
        elif tactic:
            unknown.append(f"tactic {as_text(tactic.get('id') or tactic.get('name'))!r}")
        for technique in _technique_entries(block.get("technique")):
            technique_id = normalize_technique_id(as_text(technique.get("id")))
            if technique_id:
                rule.techniques.append(technique_id)
            else:
                unknown.append(f"technique {as_text(technique.get('id'))!r}")

    rule.tactics = sorted(dict.fromkeys(tactics), key=tactic_order)
    rule.techniques = list(dict.fromkeys(rule.techniques))
    if rule.tactics:
        rule.provenance["tactics"] = "derived: rule.threat tactic ids, as ATT&CK v19 names"
    if unknown:
        rule.warnings.append(f"rule.threat entries not mapped to ATT&CK: {', '.join(unknown)}")


def _technique_entries(value: Any) -> list[dict[str, Any]]:
    """Return the technique tables of a threat block followed by their sub-technique tables."""
    entries: list[dict[str, Any]] = []
    for technique in value if isinstance(value, list) else []:
        if not isinstance(technique, dict):
            continue
        entries.append(technique)
        subtechniques = technique.get("subtechnique")
        if isinstance(subtechniques, list):
            entries.extend(sub for sub in subtechniques if isinstance(sub, dict))
    return entries


def _set_building_block(rule: Rule, table: dict[str, Any]) -> None:
    in_folder = rule.path.startswith(_BUILDING_BLOCK_FOLDER)
    if not in_folder and not table.get("building_block_type"):
        return
    rule.tags.append(_BUILDING_BLOCK_TAG)
    reason = f"the file is under {_BUILDING_BLOCK_FOLDER}" if in_folder else "building_block_type"
    rule.provenance["tags"] = f"derived: {_BUILDING_BLOCK_TAG!r} added because of {reason}"


def _set_data_sources(rule: Rule, table: dict[str, Any], metadata: dict[str, Any]) -> None:
    for pattern in as_text_list(table.get("index")):
        rule.data_sources.append(DataSource(kind="index", name=pattern, origin="source: index"))
    if rule.language == "esql" and not table.get("index"):
        _add_esql_sources(rule)
    for integration in as_text_list(metadata.get("integration")):
        rule.data_sources.append(
            DataSource(kind="integration", name=integration, origin="source: metadata.integration")
        )


def _add_esql_sources(rule: Rule) -> None:
    patterns = esql_source_indices(rule.query)
    for pattern in patterns:
        rule.data_sources.append(
            DataSource(
                kind="index", name=pattern, origin="derived: read from the ES|QL FROM clause"
            )
        )
    if patterns:
        rule.warnings.append(
            "ES|QL rule has no index field; its indices were read from the FROM clause: "
            + ", ".join(patterns)
        )
    else:
        rule.warnings.append("ES|QL rule has no index field and no FROM clause was found")


def esql_source_indices(query: str) -> list[str]:
    """Return the index patterns of the first FROM command of an ES|QL query."""
    match = _ESQL_FROM.search(_ESQL_COMMENT.sub("", query))
    if not match:
        return []
    patterns = (part.strip().strip("\"'`") for part in match.group(1).split(","))
    return list(dict.fromkeys(pattern for pattern in patterns if pattern))


def _hunting_rules(file: RuleFile, hunt: dict[str, Any], table_line: int) -> ParsedFile:
    """Build one hunting rule per entry of the [hunt] table's query list."""
    name = as_text(hunt.get("name"))
    if not name:
        raise file.error("[hunt] table is missing the name field", table_line)
    queries = hunt.get("query")
    if isinstance(queries, str):
        queries = [queries]
    if not isinstance(queries, list) or not queries:
        raise file.error("[hunt] table is missing the query list", table_line)

    result = ParsedFile()
    search_from = 0
    for index, query in enumerate(queries):
        if not isinstance(query, str) or not query.strip():
            reason = f"[hunt] query {index + 1} is empty or not a string"
            result.errors.append(file.error(reason, table_line))
            continue
        line, search_from = _line_of(file.text, query, search_from)
        rule = _hunting_rule(file, hunt, query, index, len(queries))
        rule.line = line
        result.rules.append(rule)
    return result


def _hunting_rule(file: RuleFile, hunt: dict[str, Any], query: str, index: int, count: int) -> Rule:
    """Build the hunting rule for one query of a [hunt] table."""
    title = as_text(hunt.get("name"))
    if count > 1:
        title += f" (query {index + 1} of {count})"
    rule = Rule(
        source=file.source,
        path=file.path,
        rule_id="",
        format="elastic",
        title=title,
        language="",
        kind="hunting",
        query=query.strip(),
        raw_text=file.text,
        description=as_text(hunt.get("description")),
        author=", ".join(as_text_list(hunt.get("author"))),
        references=as_text_list(hunt.get("references")),
        query_index=index,
    )
    rule.provenance["kind"] = "derived: Elastic [hunt] files are hunting queries"
    if count > 1:
        rule.provenance["title"] = f"derived: hunt.name with the query number ({index + 1})"

    _set_hunting_id(rule, as_text(hunt.get("uuid")), index)
    _set_hunting_language(rule, as_text_list(hunt.get("language")))
    _set_hunting_techniques(rule, as_text_list(hunt.get("mitre")))
    _set_hunting_data_sources(rule, hunt)
    rule.extra.update(_picked(hunt, ("notes", "license", "integration", "language")))
    return rule


def _set_hunting_data_sources(rule: Rule, hunt: dict[str, Any]) -> None:
    for integration in as_text_list(hunt.get("integration")):
        rule.data_sources.append(
            DataSource(kind="integration", name=integration, origin="source: hunt.integration")
        )
    if rule.language != "esql":
        return
    origin = "derived: read from the ES|QL FROM clause"
    for pattern in esql_source_indices(rule.query):
        rule.data_sources.append(DataSource(kind="index", name=pattern, origin=origin))


def _set_hunting_id(rule: Rule, uuid: str, index: int) -> None:
    if not uuid:
        rule.rule_id = derive_rule_id(rule.source, rule.path, index)
        rule.provenance["rule_id"] = "derived: derive_rule_id from source, path and query index"
        rule.warnings.append("[hunt] has no uuid; the id is derived from the file path")
    elif index == 0:
        rule.rule_id = uuid
    else:
        rule.rule_id = f"{uuid}-{index + 1}"
        rule.provenance["rule_id"] = f"derived: hunt.uuid with the query number ({index + 1})"


def _set_hunting_language(rule: Rule, languages: list[str]) -> None:
    """Pick the query's language: the one listed, or read from the query when several are."""
    known = [_LANGUAGES.get(language.lower(), language.lower()) for language in languages]
    words = rule.query.split(maxsplit=2)
    if len(words) > 1 and words[0].lower() == "sql":
        rule.warnings.append(
            "the query starts with a stray 'sql' line, probably a leftover Markdown code-fence "
            "tag; remove it before running the query"
        )
        words = words[1:]
    if len(set(known)) == 1:
        rule.language = known[0]
        rule.provenance["language"] = f"derived: hunt.language {languages[0]!r}"
        return

    first_word = words[0].lower() if words else ""
    guessed = {"from": "esql", "select": "osquery", "with": "osquery"}.get(first_word)
    rule.language = guessed or (known[0] if known else "")
    rule.provenance["language"] = (
        f"inferred: the query starts with {first_word.upper()!r} and hunt.language lists "
        f"{', '.join(languages) or 'nothing'}"
    )


def _set_hunting_techniques(rule: Rule, ids: list[str]) -> None:
    atlas: list[str] = []
    unknown: list[str] = []
    for value in ids:
        technique = normalize_technique_id(value)
        if technique:
            rule.techniques.append(technique)
        elif _ATLAS_ID.match(value):
            atlas.append(value)
        else:
            unknown.append(repr(value))
    rule.techniques = list(dict.fromkeys(rule.techniques))
    if atlas:
        # MITRE ATLAS ids name attacks on AI systems and have no ATT&CK equivalent.
        rule.extra["atlas_techniques"] = atlas
    if unknown:
        rule.warnings.append(f"hunt.mitre ids not mapped to ATT&CK: {', '.join(unknown)}")


def _line_of(text: str, query: str, start: int) -> tuple[int | None, int]:
    """Return the 1-based line where a query's text starts and the offset to search on from."""
    probe = query.strip().split("\n", 1)[0]
    found = text.find(probe, start)
    if not probe or found < 0:
        return None, start
    return text.count("\n", 0, found) + 1, found + len(probe)


def _picked(table: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {key: _plain(table[key]) for key in keys if table.get(key) not in (None, "", [])}


def _plain(value: Any) -> Any:
    """Return TOML data with dates and times as ISO strings, so it serializes to JSON."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return value


FORMAT = Format(name="elastic", parse=parse)
