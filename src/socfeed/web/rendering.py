"""Templates, links and syntax highlighting shared by the HTML pages."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup, escape
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import get_lexer_by_name

from socfeed.attack.ids import tactic_by_any
from socfeed.model import SEVERITIES
from socfeed.store.search import END, START
from socfeed.web.params import single_filter_url

TEMPLATE_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"

# Display names of the query languages the parsers write into Rule.language.
LANGUAGE_LABELS = {
    "kql": "KQL",
    "sigma": "Sigma",
    "spl": "SPL",
    "eql": "EQL",
    "esql": "ES|QL",
    "kuery": "Kibana KQL",
    "lucene": "Lucene",
}

# Pygments 2.21 has lexers for Kusto and YAML but none for SPL, EQL, Kibana KQL or Lucene.
# ES|QL shares SQL's keywords and string syntax, so the SQL lexer is the closest fit. The
# others are shown as plain text rather than mis-highlighted by an unrelated lexer.
_QUERY_LEXERS = {"kql": "kusto", "sigma": "yaml", "esql": "sql"}
_FILE_LEXERS = {
    ".yml": "yaml",
    ".yaml": "yaml",
    ".toml": "toml",
    ".md": "markdown",
    ".kql": "kusto",
    ".csl": "kusto",
}
_HIGHLIGHT_CLASS = "highlight"


def language_label(language: str) -> str:
    """Return the display name of a query language, or the stored value if unknown."""
    return LANGUAGE_LABELS.get(language, language or "no language")


def rule_path(key: str) -> str:
    """Return the rule page path for a store key, percent-encoded ('/', '?', '#', '%')."""
    return "/rules/" + quote(key, safe=":")


def api_rule_path(key: str) -> str:
    """Return the JSON API path of a rule."""
    return "/api/rules/" + quote(key, safe=":")


def safe_href(url: str | None) -> str | None:
    """Return ``url`` if it is an absolute http(s) URL, else None.

    Rule files are untrusted, and a ``javascript:`` or ``data:`` URL in an href runs script
    even though autoescape has escaped its characters.
    """
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return url.strip()


def attack_technique_url(technique_id: str) -> str:
    """Return the attack.mitre.org page of a technique or sub-technique id."""
    return "https://attack.mitre.org/techniques/" + technique_id.replace(".", "/") + "/"


def attack_tactic_url(tactic: str) -> str | None:
    """Return the attack.mitre.org page of a tactic given by name or id, if it is known."""
    found = tactic_by_any(tactic)
    return f"https://attack.mitre.org/tactics/{found.id}/" if found else None


def query_lexer_name(language: str) -> str:
    """Return the Pygments lexer alias used for a query language ('text' when none fits)."""
    return _QUERY_LEXERS.get(language, "text")


def file_lexer_name(path: str) -> str:
    """Return the Pygments lexer alias for a rule file, chosen by its extension."""
    return _FILE_LEXERS.get(PurePosixPath(path).suffix.lower(), "text")


@lru_cache(maxsize=16)
def _lexer(name: str) -> Lexer:
    # stripnl=False keeps leading blank lines, so line numbers match the file.
    return get_lexer_by_name(name, stripnl=False)


def highlight_code(code: str, lexer_name: str, line_prefix: str = "") -> Markup:
    """Return ``code`` as highlighted HTML. Pygments escapes every token it writes.

    With ``line_prefix`` each line is a span with the id ``<prefix>-<number>``, which the
    stylesheet numbers. The numbers are not part of the text, so copying leaves them out.
    """
    formatter = HtmlFormatter(cssclass=_HIGHLIGHT_CLASS, wrapcode=True, linespans=line_prefix)
    return Markup(highlight(code, _lexer(lexer_name), formatter))


def marked_snippet(snippet: str) -> Markup:
    """Return a search excerpt as HTML: text escaped, matches in ``<mark>`` elements.

    The store marks matches with the control characters START and END. Markers that pair
    up become elements; a stray marker, which rule text itself may contain, is dropped.
    """
    parts: list[str] = []
    head, *marked = snippet.split(START)
    parts.append(str(escape(head.replace(END, ""))))
    for chunk in marked:
        match, found, rest = chunk.partition(END)
        if found:
            parts.append(f"<mark>{escape(match)}</mark>{escape(rest.replace(END, ''))}")
        else:
            parts.append(str(escape(match)))
    return Markup("".join(parts))


def highlight_css() -> str:
    """Return the CSS of the highlighting: a light style, and a dark one for dark mode."""
    light = HtmlFormatter(style="default").get_style_defs(f".{_HIGHLIGHT_CLASS}")
    dark = HtmlFormatter(style="github-dark").get_style_defs(f".{_HIGHLIGHT_CLASS}")
    return (
        _scoped_rules(light)
        + "\n@media (prefers-color-scheme: dark) {\n"
        + _scoped_rules(dark)
        + "\n}\n"
    )


def _scoped_rules(css: str) -> str:
    # get_style_defs also writes unscoped rules for pre and line-number tables. Dropping them
    # keeps them from restyling the rest of the page.
    prefix = f".{_HIGHLIGHT_CLASS}"
    return "\n".join(line for line in css.splitlines() if line.startswith(prefix))


def sentence_case(text: str) -> str:
    """Return ``text`` with its first letter upper-cased and the rest unchanged."""
    return text[:1].upper() + text[1:]


def build_templates() -> Jinja2Templates:
    """Create the template set: autoescape on for every template, undefined names fail."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATE_DIR),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["sentence"] = sentence_case
    env.globals.update(
        language_label=language_label,
        rule_path=rule_path,
        filter_url=single_filter_url,
        safe_href=safe_href,
        attack_technique_url=attack_technique_url,
        attack_tactic_url=attack_tactic_url,
        SEVERITIES=SEVERITIES,
    )
    return Jinja2Templates(env=env)


def render(
    request: Request, template: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    """Render a page; every page gets the sources shown as a sample for the banner.

    Error pages pass ``sample_sources`` themselves, so that a failing store is not read again.
    """
    templates: Jinja2Templates = request.app.state.templates
    page_context = dict(context)
    if "sample_sources" not in page_context:
        page_context["sample_sources"] = _sample_source_names(request)
    return templates.TemplateResponse(request, template, page_context, status_code=status_code)


def _sample_source_names(request: Request) -> list[str]:
    return [record.name for record in request.app.state.store.sources() if record.is_sample]
