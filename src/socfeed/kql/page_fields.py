"""Read rule fields from the prose of a Markdown query page.

Query pages (Microsoft 365 Defender hunting queries, FalconFriday, Bert-JanP) write
their metadata as sections ("Description", "False Positives", "References"), tables
(an ATT&CK table, a "Covered?" category table, a version history) and ``**Key:** value``
lines. Each reader here returns what it found and where, for ``rule.provenance``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from socfeed.attack.ids import normalize_technique_id, tactic_by_any, technique_ids_in_text
from socfeed.formats.base import iso_date
from socfeed.kql.markdown import Block, Document, link_targets, plain_text

_PROSE_KINDS = ("paragraph", "list", "quote")
_DESCRIPTION_HEADING = re.compile(r"^(?:detection |query |hunt )?(?:description|summary|goal)$")
_SELF_DETECTION = re.compile(
    r"^\W*(?:custom\s+)?detection rule\b|\bthis (?:query|rule) is a (?:custom )?detection rule\b",
    re.IGNORECASE | re.MULTILINE,
)
_TACTIC_IN_LINK = re.compile(r"attack\.mitre\.org/tactics/(TA\d{4})", re.IGNORECASE)
_URL = re.compile(r"https?://[^\s<>)\]]+")
_IN_PAGE_LINK = re.compile(r"^\s*(?:[-*+]|\d+\.)\s+\[[^\]]*\]\(#[^)]*\)\s*$")
_AUTHOR_FIELDS = ("Contributor", "Author", "Contributors", "Authors")
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))
# Sections whose prose is boilerplate of the page layout, not rule content.
_LAYOUT_SECTIONS = frozenset({"category", "contributor info", "contributors info", "query"})


@dataclass
class PageFields:
    """Rule fields found in the prose of a page, with where each came from."""

    description: str = ""
    tactics: list[str] = field(default_factory=list)
    unknown_tactics: list[str] = field(default_factory=list)
    techniques: list[str] = field(default_factory=list)
    author: str = ""
    references: list[str] = field(default_factory=list)
    false_positives: list[str] = field(default_factory=list)
    created: str | None = None
    modified: str | None = None
    fields: dict[str, str] = field(default_factory=dict)
    sections: dict[str, str] = field(default_factory=dict)
    detection_reason: str = ""  # set when the page calls itself a detection rule
    origins: dict[str, str] = field(default_factory=dict)  # Rule field -> provenance text
    warnings: list[str] = field(default_factory=list)
    used_blocks: set[int] = field(default_factory=set)  # first lines of blocks read into fields
    markdown: bool = True  # False for plain query files, whose field values are not Markdown


def read_page_fields(document: Document, first_code_line: int) -> PageFields:
    """Read the fields of a page whose first query starts at ``first_code_line`` (0-based)."""
    page = PageFields(fields=document.fields())
    bodies = section_bodies(document)
    _read_description(page, document, bodies, first_code_line)
    _read_attack(page, document)
    _read_named_sections(page, bodies)
    _read_dates(page, document)
    author_key = next((key for key in _AUTHOR_FIELDS if page.fields.get(key)), "")
    if author_key:
        page.author = plain_text(page.fields[author_key]).strip("<> ").strip()
        page.origins["author"] = f"derived: the {author_key} field"
    page.detection_reason = self_detection_reason(f"{document.title}\n{page.description}")
    return page


def self_detection_reason(text: str) -> str:
    """Return a provenance text when ``text`` calls its query a detection rule, else ""."""
    match = _SELF_DETECTION.search(text)
    if match is None:
        return ""
    return f"derived: the description calls the query {match.group(0).strip()!r}"


def section_bodies(document: Document) -> list[tuple[Block, list[Block]]]:
    """Return each heading with the prose blocks up to the next heading."""
    bodies: list[tuple[Block, list[Block]]] = []
    for block in document.blocks:
        if block.kind == "heading":
            bodies.append((block, []))
        elif bodies and block.kind in _PROSE_KINDS:
            bodies[-1][1].append(block)
    return bodies


def is_detection_heading(text: str) -> bool:
    """Return True for a heading such as "Detection" or "Detection Query (User as actor)"."""
    lowered = text.strip().lower()
    if not lowered.startswith("detection"):
        return False
    return not lowered.startswith(("detection description", "detection blind"))


def _prose(blocks: list[Block]) -> str:
    texts = (_visible(block.text) for block in blocks)
    return "\n\n".join(text for text in texts if text)


def _visible(text: str) -> str:
    """Return text without zero-width characters, stripped."""
    return text.translate(_INVISIBLE).strip()


def _read_description(
    page: PageFields, document: Document, bodies: list[tuple[Block, list[Block]]], first: int
) -> None:
    for heading, blocks in bodies:
        if _DESCRIPTION_HEADING.match(heading.text.strip().lower()) and _prose(blocks):
            page.description = _prose(blocks)
            page.origins["description"] = f"derived: the {heading.text.strip()!r} section"
            page.used_blocks.update(block.start for block in blocks)
            return
    before = [b for b in document.blocks if b.kind in _PROSE_KINDS and b.start < first]
    before = [b for b in before if _is_content(b)]
    if _prose(before):
        page.description = _prose(before)
        page.origins["description"] = "derived: the text before the query"
        page.used_blocks.update(block.start for block in before)


def _is_content(block: Block) -> bool:
    """Return False for blocks of page layout: field lines and tables of contents."""
    return not _is_field_block(block) and not _is_table_of_contents(block)


def _is_table_of_contents(block: Block) -> bool:
    lines = [line for line in block.text.splitlines() if line.strip()]
    return block.kind == "list" and all(_IN_PAGE_LINK.match(line) for line in lines)


def _is_field_block(block: Block) -> bool:
    lines = [line for line in _visible(block.text).splitlines() if line.strip()]
    return bool(lines) and all(line.lstrip().startswith("**") and ":**" in line for line in lines)


def _read_attack(page: PageFields, document: Document) -> None:
    tactic_values: list[str] = []
    techniques: list[str] = []
    tactic_sources: list[str] = []
    technique_sources: list[str] = []
    for block in document.blocks:
        if block.kind == "table" and block.rows:
            found_tactics, found_techniques = _attack_from_table(block.rows)
            tactic_values += found_tactics
            techniques += found_techniques
            tactic_sources += ["an ATT&CK table"] if found_tactics else []
            technique_sources += ["an ATT&CK table"] if found_techniques else []
    for key in ("Tactic", "Tactics"):
        if page.fields.get(key):
            tactic_values += [plain_text(part) for part in page.fields[key].split(",")]
            tactic_sources.append(f"the {key} field")
    prose = "\n".join(b.text for b in document.blocks if b.kind not in ("fence", "code", "table"))
    in_prose = [t for t in technique_ids_in_text(prose) if t not in techniques]
    linked = _TACTIC_IN_LINK.findall(prose)
    if in_prose:
        technique_sources.append("ATT&CK ids and links in the text")
    if linked:
        tactic_sources.append("ATT&CK links in the text")
    _store_tactics(page, tactic_values + linked, tactic_sources)
    page.techniques = list(dict.fromkeys(techniques + in_prose))
    if page.techniques:
        page.origins["techniques"] = "derived: " + ", ".join(dict.fromkeys(technique_sources))


def _store_tactics(page: PageFields, values: list[str], sources: list[str]) -> None:
    for value in values:
        tactic = tactic_by_any(value)
        if tactic is None:
            if value and value not in page.unknown_tactics:
                page.unknown_tactics.append(value)
        elif tactic.name not in page.tactics:
            page.tactics.append(tactic.name)
    if page.tactics:
        page.origins["tactics"] = "derived: " + ", ".join(dict.fromkeys(sources))


def _attack_from_table(rows: list[list[str]]) -> tuple[list[str], list[str]]:
    """Read tactics and techniques from an ATT&CK table or a "Covered?" category table."""
    header = [plain_text(cell).lower() for cell in rows[0]]
    covered = next((i for i, cell in enumerate(header) if "covered" in cell), None)
    tactic_column = next((i for i, cell in enumerate(header) if "tactic" in cell), None)
    if covered is not None and tactic_column is not None:
        # Microsoft's category table marks the tactics a query covers with "v" or "x".
        marked = [row for row in rows[1:] if len(row) > covered and plain_text(row[covered])]
        return [plain_text(row[tactic_column]) for row in marked], []
    technique_column = next(
        (i for i, cell in enumerate(header) if "technique" in cell and "name" not in cell), None
    )
    sub_column = next((i for i, cell in enumerate(header) if "sub" in cell), None)
    if technique_column is None and tactic_column is None:
        return [], []
    tactics: list[str] = []
    techniques: list[str] = []
    for row in rows[1:]:
        if tactic_column is not None and tactic_column < len(row):
            tactics += _tactic_cell(plain_text(row[tactic_column]))
        techniques += _technique_cell(row, technique_column, sub_column)
    return tactics, techniques


def _tactic_cell(cell: str) -> list[str]:
    # "TA0004 - Privilege Escalation": the id is enough, and the name is the fallback.
    parts = [part.strip() for part in cell.split(" - ") if part.strip()]
    known = [part for part in parts if tactic_by_any(part)]
    return known[:1] or parts[:1]


def _technique_cell(row: list[str], column: int | None, sub_column: int | None) -> list[str]:
    if column is None or column >= len(row):
        return technique_ids_in_text(" ".join(row))
    base = normalize_technique_id(plain_text(row[column]))
    if base is None:
        return technique_ids_in_text(row[column])
    if sub_column is not None and sub_column < len(row):
        sub = plain_text(row[sub_column]).lstrip(".")
        if sub.isdigit() and "." not in base:
            return [f"{base}.{int(sub):03d}"]
    return [base]


def _read_named_sections(page: PageFields, bodies: list[tuple[Block, list[Block]]]) -> None:
    for heading, blocks in bodies:
        name = heading.text.strip()
        lowered = name.lower()
        text = _prose(blocks)
        if "false positive" in lowered and text:
            page.false_positives = _list_items(blocks) or [text]
            page.origins["false_positives"] = f"derived: the {name!r} section"
        elif lowered.startswith(("reference", "see also", "links")):
            page.references += _urls(blocks)
        elif lowered not in _LAYOUT_SECTIONS and name not in page.sections:
            content = [b for b in blocks if b.start not in page.used_blocks and _is_content(b)]
            if _prose(content):
                page.sections[name] = _prose(content)
    reference_field = page.fields.get("References", "")
    page.references += [u for u in link_targets(reference_field) if u.startswith("http")]
    page.references = list(dict.fromkeys(page.references))
    if page.references:
        page.origins["references"] = "derived: the URLs of the references section or field"


def _list_items(blocks: list[Block]) -> list[str]:
    items: list[str] = []
    for block in blocks:
        if block.kind == "list":
            for line in block.text.splitlines():
                stripped = line.strip()
                if stripped[:2] in ("- ", "* ", "+ "):
                    items.append(stripped[2:].strip())
                elif items and stripped:
                    items[-1] += " " + stripped
    return items


def _urls(blocks: list[Block]) -> list[str]:
    found: list[str] = []
    for block in blocks:
        found += [url.rstrip(".,;") for url in _URL.findall(block.text)]
    return found


def _read_dates(page: PageFields, document: Document) -> None:
    dates: list[str] = []
    for block in document.blocks:
        if block.kind != "table" or not block.rows:
            continue
        header = [plain_text(cell).lower() for cell in block.rows[0]]
        if "date" in header and any("version" in cell for cell in header):
            column = header.index("date")
            dates += [_date(page, row[column]) or "" for row in block.rows[1:] if column < len(row)]
    dates = sorted(date for date in dates if date)
    if dates:
        page.created, page.modified = dates[0], dates[-1]
        page.origins["created"] = "derived: the oldest date of the version history"
        page.origins["modified"] = "derived: the newest date of the version history"
    for key in ("Last Modified", "Last modified", "Modified", "Updated"):
        if page.fields.get(key) and page.modified is None:
            page.modified = _date(page, page.fields[key])
            page.origins["modified"] = f"derived: the {key} field"


def _date(page: PageFields, value: str) -> str | None:
    text = plain_text(value).split(" ")[0] if value.strip() else ""
    date, warning = iso_date(text)
    if warning:
        page.warnings.append(warning)
    return date
