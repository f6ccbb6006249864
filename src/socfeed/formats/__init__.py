"""Registry of rule formats: one parser module per format, listed once here."""

from __future__ import annotations

import importlib

from socfeed.formats.base import Format, ParsedFile, RuleFile

# Format name (as used in the source config) -> module exposing ``FORMAT``.
_MODULES = {
    "sentinel": "socfeed.formats.sentinel",
    "sigma": "socfeed.formats.sigma",
    "elastic": "socfeed.formats.elastic",
    "splunk": "socfeed.formats.splunk",
    "kql-markdown": "socfeed.formats.kql_markdown",
}


def format_names() -> list[str]:
    """Return the names of every registered format."""
    return list(_MODULES)


def get_format(name: str) -> Format:
    """Return the registered format called ``name``; raise KeyError naming the known ones."""
    try:
        module_name = _MODULES[name]
    except KeyError:
        known = ", ".join(_MODULES)
        raise KeyError(f"unknown rule format {name!r}; known formats: {known}") from None
    module = importlib.import_module(module_name)
    return module.FORMAT  # type: ignore[no-any-return]


__all__ = ["Format", "ParsedFile", "RuleFile", "format_names", "get_format"]
