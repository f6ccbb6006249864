"""Parse Sigma rule files: single rules, multi-document files and rule collections.

YAML is read with PyYAML's C loader and each rule document is handed to pySigma's dict
loader, which validates it. pySigma errors on metadata become warnings. Errors that leave
the rule without a usable log source, detection or condition make it a ParseError.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from sigma import exceptions as sigma_errors
from sigma.correlations import SigmaCorrelationRule
from sigma.rule import SigmaRule

from socfeed.attack.ids import normalize_technique_id, tactic_by_any, tactic_order
from socfeed.errors import ParseError
from socfeed.formats.base import (
    Format,
    ParsedFile,
    RuleFile,
    as_text,
    as_text_list,
    iso_date,
    load_yaml_documents,
)
from socfeed.model import SEVERITIES, DataSource, Rule, derive_rule_id

try:
    _YamlDumper: type[yaml.SafeDumper] = yaml.CSafeDumper  # type: ignore[assignment]
except AttributeError:  # PyYAML built without libyaml
    _YamlDumper = yaml.SafeDumper

# pySigma errors on fields that do not change what the rule matches: the rule stays usable.
_METADATA_ERRORS: tuple[type[sigma_errors.SigmaError], ...] = (
    sigma_errors.SigmaIdentifierError,
    sigma_errors.SigmaNameError,
    sigma_errors.SigmaTaxonomyError,
    sigma_errors.SigmaRelatedError,
    sigma_errors.SigmaLevelError,
    sigma_errors.SigmaStatusError,
    sigma_errors.SigmaTagError,
    sigma_errors.SigmaFieldsError,
    sigma_errors.SigmaFalsePositivesError,
    sigma_errors.SigmaAuthorError,
    sigma_errors.SigmaDescriptionError,
    sigma_errors.SigmaReferencesError,
    sigma_errors.SigmaScopeError,
    sigma_errors.SigmaLicenseError,
)
# Date errors are left out because iso_date reads more date forms and writes its own warning.
_DATE_ERRORS = (sigma_errors.SigmaDateError, sigma_errors.SigmaModifiedError)

_HUNTING_FOLDER = "rules-threat-hunting/"
_DEPRECATED_FOLDER = "deprecated/"
_DOCUMENT_MARKER = re.compile(r"^(?:---|\.\.\.)(?:\s|$)")
_LIST_ITEM = re.compile(r"^(\s*)-(?:\s|$)")

# ATT&CK tags other than tactics and techniques: groups, software, campaigns, mitigations
# and data sources (G0016, S0002, C0010, M1036, DS0005).
_ATTACK_OBJECT_TAG = re.compile(r"^(?:g|s|c|m|ds)\d{4}$", re.IGNORECASE)
_BARE_TECHNIQUE = re.compile(r"^t\d{4}(?:[./]\d{3})?$", re.IGNORECASE)

# Fields the rule page may show that have no place in the Rule model.
_EXTRA_FIELDS = ("logsource", "related", "fields", "name", "taxonomy", "scope", "license")


def parse(file: RuleFile) -> ParsedFile:
    """Parse a Sigma file into one rule per rule document, collecting per-document errors."""
    documents = load_yaml_documents(file)
    if not documents:
        raise file.error("the file contains no YAML document")

    result = ParsedFile()
    collection = _Collection(file)
    used_ids: set[str] = set()
    for index, (item, line) in enumerate(_collection_items(file, documents)):
        try:
            data = collection.resolve(item, line)
            if data is not None:
                rule = _build_rule(file, data, line, index, used_ids)
                result.rules.append(rule)
        except ParseError as error:
            result.errors.append(error)

    if not result.rules and not result.errors:
        first_line = documents[0][1]
        reason = "the file holds only 'action: global' or 'action: reset' documents, no rule"
        result.errors.append(file.error(reason, first_line))
    return result


@dataclass
class _Collection:
    """State of a Sigma rule collection while its documents are read in order.

    Follows the Sigma 1.0 collection actions: ``global`` sets fields deep-merged into every
    later rule document, ``reset`` clears them, ``repeat`` parses the previous rule document
    again with its own fields merged over it. Where a document and the global fields set the
    same key, the global value wins, as in pySigma 1.5 and the legacy sigmac.
    """

    file: RuleFile
    global_fields: dict[str, Any] = field(default_factory=dict)
    previous: dict[str, Any] | None = None

    def resolve(self, item: Any, line: int) -> dict[str, Any] | None:
        """Return the complete rule a document stands for, or None for global/reset."""
        if not isinstance(item, dict):
            kind = type(item).__name__
            raise self.file.error(f"YAML document is a {kind}, not a mapping of rule fields", line)
        action = item.get("action")
        body = {key: value for key, value in item.items() if key != "action"}

        if action is None:
            if "filter" in body:
                raise self.file.error(
                    "document is a Sigma filter, not a rule: a filter changes other rules, "
                    "so it is not stored",
                    line,
                )
            # pySigma merges no global fields into correlation rules either.
            merged = body if "correlation" in body else _deep_merge(body, self.global_fields)
            self.previous = merged
            return merged
        if action == "global":
            self.global_fields = body
            self.previous = body
            return None
        if action == "reset":
            self.global_fields = {}
            return None
        if action == "repeat":
            if self.previous is None:
                raise self.file.error("'action: repeat' has no earlier rule document", line)
            self.previous = _deep_merge(self.previous, body)
            return self.previous
        raise self.file.error(
            f"unknown Sigma collection action {action!r}; expected global, reset or repeat", line
        )


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        current = merged.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            merged[key] = _deep_merge(current, value)
        else:
            merged[key] = value
    return merged


def _collection_items(file: RuleFile, documents: list[tuple[Any, int]]) -> list[tuple[Any, int]]:
    """Flatten documents into collection items; a document that is a YAML list contains several."""
    items: list[tuple[Any, int]] = []
    for document, line in documents:
        if isinstance(document, list):
            lines = _list_item_lines(file.text, line, len(document))
            items.extend(zip(document, lines, strict=True))
        else:
            items.append((document, line))
    return items


def _list_item_lines(text: str, first_line: int, count: int) -> list[int]:
    """Return the line of each top-level item of the YAML list that starts at first_line.

    NOTE: this scans for "- " at the first item's indentation up to the next document
    marker, because load_yaml_documents keeps no node positions below the document. Where
    the count does not match (flow-style lists), every item gets the list's first line.
    """
    lines = text.splitlines()
    start = lines[first_line - 1] if first_line <= len(lines) else ""
    match = _LIST_ITEM.match(start)
    indent = match.group(1) if match else ""
    found: list[int] = []
    for number in range(first_line, len(lines) + 1):
        line = lines[number - 1]
        if number > first_line and _DOCUMENT_MARKER.match(line):
            break
        item = _LIST_ITEM.match(line)
        if item and item.group(1) == indent:
            found.append(number)
    return found if len(found) == count else [first_line] * count


def _build_rule(
    file: RuleFile, data: dict[str, Any], line: int, index: int, used_ids: set[str]
) -> Rule:
    """Validate one complete rule document with pySigma and map it to the rule model."""
    warnings = _validate(file, data, line)
    title = data.get("title")
    if not isinstance(title, str) or not title.strip():
        raise file.error("invalid Sigma rule: the title is empty", line)

    body_key = "correlation" if "correlation" in data else "detection"
    rule = Rule(
        source=file.source,
        path=file.path,
        rule_id="",
        format="sigma",
        title=title.strip(),
        language="sigma",
        kind="detection",
        query=_dump_yaml(data.get(body_key)),
        raw_text=_document_text(file.text, line),
        description=as_text(data.get("description")),
        author=_joined(data.get("author")),
        references=as_text_list(data.get("references")),
        false_positives=as_text_list(data.get("falsepositives")),
        tags=as_text_list(data.get("tags")),
        warnings=warnings,
        query_index=index,
        line=line,
    )
    rule.provenance["language"] = "derived: every Sigma rule is written in Sigma"
    rule.provenance["query"] = f"derived: the {body_key} block written back as YAML"
    _set_rule_id(rule, data.get("id"), used_ids)
    _set_kind_and_status(rule, data.get("status"))
    _set_severity(rule, data.get("level"))
    _set_dates(rule, data)
    _set_attack(rule)
    _set_logsource(rule, data.get("logsource"))
    for key in (*_EXTRA_FIELDS, "correlation"):
        if data.get(key) is not None:
            rule.extra[key] = _plain(data[key])
    return rule


def _validate(file: RuleFile, data: dict[str, Any], line: int) -> list[str]:
    """Validate a rule with pySigma's dict loader; return warnings, raise if it is unusable."""
    checked = dict(data)
    tags = data.get("tags")
    if isinstance(tags, list):
        # Tags without a namespace are reported by _set_attack, more precisely than pySigma can.
        checked["tags"] = [tag for tag in tags if not isinstance(tag, str) or "." in tag]
    rule_class = SigmaCorrelationRule if "correlation" in data else SigmaRule
    try:
        parsed = rule_class.from_dict(checked, collect_errors=True)
    except sigma_errors.SigmaError as error:
        # Correlation rules check some fields after loading and raise despite collect_errors.
        raise file.error(f"invalid Sigma rule: {error}", line) from error
    except (TypeError, AttributeError, KeyError, UnboundLocalError) as error:
        # pySigma 1.5 fails with plain Python errors on some malformed values, for example
        # UnboundLocalError on an unknown correlation type.
        reason = f"invalid Sigma rule: pySigma could not read it ({type(error).__name__}: {error})"
        raise file.error(reason, line) from error

    fatal: list[str] = []
    warnings: list[str] = []
    title_is_text = isinstance(data.get("title"), str)
    for found in parsed.errors:
        if isinstance(found, _DATE_ERRORS):
            continue
        if isinstance(found, _METADATA_ERRORS) or (
            isinstance(found, sigma_errors.SigmaTitleError) and title_is_text
        ):
            warnings.append(f"pySigma reports: {found}")
        else:
            fatal.append(str(found))
    if not fatal and isinstance(parsed, SigmaRule):
        fatal.extend(_condition_errors(parsed, warnings))
    if fatal:
        raise file.error(f"invalid Sigma rule: {'; '.join(fatal)}", line)
    return warnings


def _condition_errors(parsed: SigmaRule, warnings: list[str]) -> list[str]:
    """Parse every condition now, because pySigma parses them only when a rule is converted."""
    errors: list[str] = []
    for condition in parsed.detection.parsed_condition:
        text = condition.condition
        if not isinstance(text, str):
            errors.append(f"condition {text!r} is not a string")
        elif "|" in text:
            warnings.append(
                f"condition {text!r} uses the aggregation syntax ('| count() ...') that Sigma "
                "replaced with correlation rules; pySigma cannot convert this rule"
            )
        else:
            try:
                condition.parse()
            except sigma_errors.SigmaError as error:
                errors.append(f"condition {text!r}: {error}")
    return errors


def _set_rule_id(rule: Rule, value: Any, used_ids: set[str]) -> None:
    rule_id = as_text(value)
    if rule_id and rule_id in used_ids:
        rule.warnings.append(
            f"id {rule_id} is used by an earlier rule in this file; this rule gets a derived id"
        )
        rule_id = ""
    if rule_id:
        used_ids.add(rule_id)
        rule.rule_id = rule_id
        return
    rule.rule_id = derive_rule_id(rule.source, rule.path, rule.query_index)
    used_ids.add(rule.rule_id)
    rule.provenance["rule_id"] = "derived: derive_rule_id from source, path and rule position"


def _set_kind_and_status(rule: Rule, status: Any) -> None:
    if rule.path.startswith(_HUNTING_FOLDER):
        rule.kind = "hunting"
        rule.provenance["kind"] = f"derived: the file is under {_HUNTING_FOLDER}"
    else:
        rule.provenance["kind"] = f"derived: the file is not under {_HUNTING_FOLDER}"

    rule.status = as_text(status) or None
    deprecated_path = rule.path.startswith(_DEPRECATED_FOLDER)
    if deprecated_path and rule.status is None:
        rule.status = "deprecated"
        rule.provenance["status"] = f"derived: the file is under {_DEPRECATED_FOLDER}"
    elif deprecated_path and rule.status != "deprecated":
        rule.warnings.append(
            f"the file is under {_DEPRECATED_FOLDER} but its status is {rule.status!r}"
        )


def _set_severity(rule: Rule, level: Any) -> None:
    text = as_text(level).lower()
    if text in SEVERITIES:
        rule.severity = text
    # An unknown level is already in the warnings through pySigma's SigmaLevelError.


def _set_dates(rule: Rule, data: dict[str, Any]) -> None:
    for key, attribute in (("date", "created"), ("modified", "modified")):
        value = data.get(key)
        date, warning = iso_date(value)
        setattr(rule, attribute, date)
        if warning:
            rule.warnings.append(f"field {key!r}: {warning}")
        elif date is not None and not isinstance(value, dt.date) and as_text(value) != date:
            rule.warnings.append(
                f"{key} {value!r} is not written as YYYY-MM-DD, which Sigma requires; "
                f"read as {date}"
            )
            rule.provenance[attribute] = f"derived: {key} {value!r} read as {date}"


def _set_attack(rule: Rule) -> None:
    """Map ATT&CK tags to tactics and techniques; warn about tags that look wrong."""
    tactics: list[str] = []
    unmapped: list[str] = []
    no_namespace: list[str] = []
    for tag in rule.tags:
        namespace, _, name = tag.partition(".")
        if not name:
            if _BARE_TECHNIQUE.match(tag):
                unmapped.append(f"{tag!r} (a technique id without the 'attack.' prefix)")
            else:
                no_namespace.append(repr(tag))
            continue
        if namespace.lower() != "attack":
            continue
        technique = normalize_technique_id(name)
        tactic = tactic_by_any(name)
        if technique:
            rule.techniques.append(technique)
        elif tactic:
            tactics.append(tactic.name)
        elif not _ATTACK_OBJECT_TAG.match(name):
            unmapped.append(f"{tag!r} (not an ATT&CK tactic, technique, group or software)")

    rule.techniques = list(dict.fromkeys(rule.techniques))
    rule.tactics = sorted(dict.fromkeys(tactics), key=tactic_order)
    if rule.tactics:
        rule.provenance["tactics"] = "derived: attack.<tactic> tags, as ATT&CK v19 names"
    if rule.techniques:
        rule.provenance["techniques"] = "derived: attack.t<number> tags"
    if unmapped:
        rule.warnings.append(
            f"tags not mapped to ATT&CK and kept as plain tags: {', '.join(unmapped)}"
        )
    if no_namespace:
        rule.warnings.append(
            f"tags without a namespace (Sigma tags read 'namespace.name'): "
            f"{', '.join(no_namespace)}"
        )


def _set_logsource(rule: Rule, logsource: Any) -> None:
    if not isinstance(logsource, dict):
        return  # correlation rules read other rules and have no log source
    details = {
        key: as_text(logsource.get(key))
        for key in ("product", "category", "service")
        if as_text(logsource.get(key))
    }
    if not details:
        return
    rule.data_sources.append(
        DataSource(
            kind="logsource",
            name="/".join(details.values()),
            note=as_text(logsource.get("definition")),
            origin="source: logsource",
            details=details,
        )
    )


def _dump_yaml(value: Any) -> str:
    if value is None:
        return ""
    text: str = yaml.dump(
        value,
        Dumper=_YamlDumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=4096,
    )
    return text.rstrip("\n")


def _document_text(text: str, line: int) -> str:
    """Return the YAML document of the file that contains the given line."""
    lines = text.splitlines(keepends=True)
    start = 0
    end = len(lines)
    for index, current in enumerate(lines):
        if not _DOCUMENT_MARKER.match(current):
            continue
        if index < line - 1:
            start = index + 1
        else:
            end = index
            break
    return "".join(lines[start:end])


def _joined(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(as_text_list(value))
    return as_text(value)


def _plain(value: Any) -> Any:
    """Return a copy of YAML data with dates as ISO strings, so it serializes to JSON."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


FORMAT = Format(name="sigma", parse=parse)
