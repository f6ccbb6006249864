"""Read which tables, ASIM parsers, watchlists and functions a KQL query reads.

The reader walks the tokens of ``socfeed.kql.tokens`` statement by statement. It looks
for a data source where KQL puts one: at the start of a tabular expression, as a
``union`` operand, on the right side of ``join`` and ``lookup``, in ``table('X')``,
``search in (...)`` and ``find in (...)``, and in tabular sub-queries in parentheses
anywhere in an expression. Names bound by ``let`` (and function parameters, ``| as`` and
query parameters) are not tables. ``datatable``, ``print`` and ``range`` read nothing,
and ``externaldata`` reads a URL, which is kept apart. The reader never raises (the tests
feed it broken and mutated queries): on a query it cannot follow it returns what it found
so far.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from socfeed.kql.tokens import Token, tokenize

SourceKind = str  # "table", "asim_parser", "watchlist" or "function"

# Pipe operators and query keywords. A segment that starts with one reads no table.
OPERATOR_WORDS = frozenset(
    {
        "as", "consume", "count", "distinct", "evaluate", "extend", "facet", "filter",
        "fork", "getschema", "invoke", "join", "limit", "lookup", "make-series",
        "makeseries", "mv-apply", "mv-expand", "mvexpand", "order", "parse", "parse-kv",
        "parse-where", "partition", "project", "project-away", "project-keep",
        "project-rename", "project-reorder", "reduce", "render", "sample",
        "sample-distinct", "scan", "serialize", "sort", "summarize", "take", "top",
        "top-hitters", "top-nested", "where",
    }
)  # fmt: skip
_SCALAR_WORDS = frozenset({"true", "false", "null", "and", "or", "not", "on", "by", "with"})
_SKIPPED_STATEMENTS = frozenset({"set", "alias", "pattern", "restrict"})

# Built-in ASIM parsers are _Im_<Schema> and _ASim_<Schema>, and parsers deployed to a
# workspace drop the underscores (imDns, ASimDns), and vim<Schema><Source> parsers filter
# one source. ASim...Logs names are ASIM-normalized tables, not parsers.
_ASIM_PARSER = re.compile(r"^(?:_Im_|_ASim_|_im_|im[A-Z]|ASim[A-Z]|vim[A-Z])")
_WATCHLIST_FUNCTION = "_getwatchlist"
_MAX_DEPTH = 80


@dataclass(frozen=True)
class SourceRef:
    """A data source named in a query."""

    name: str
    kind: SourceKind
    custom: bool = False  # a custom log table, named *_CL
    wildcard: bool = False  # a union or search pattern such as Security*
    line: int = 1  # first line where the query names it


@dataclass
class QuerySources:
    """Everything a query reads, in the order the query names it, without repeats."""

    sources: list[SourceRef] = field(default_factory=list)
    externaldata_urls: list[str] = field(default_factory=list)

    def names(self) -> list[str]:
        """Return the names of every source, in order."""
        return [source.name for source in self.sources]


def read_query_sources(query: str) -> QuerySources:
    """Return the tables, parsers, watchlists, functions and external URLs a query reads."""
    reader = _Reader(tokenize(query))
    reader.read_statements(0, len(reader.tokens))
    return reader.result


def read_table_names(query: str) -> list[str]:
    """Return the names of every data source a query reads, in order."""
    return read_query_sources(query).names()


def is_asim_parser(name: str) -> bool:
    """Return True for the name of an ASIM parser function such as _Im_Dns or imDns."""
    return bool(_ASIM_PARSER.match(name)) and not name.endswith("Logs")


@dataclass
class _Function:
    params: list[str]
    defaults: dict[int, str]
    tabular_params: set[int]  # parameters declared with a schema, such as T:(x:string)
    table_params: list[int] = field(default_factory=list)  # names passed to table()


class _Reader:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.match = _match_brackets(tokens)
        self.scopes: list[set[str]] = [set()]
        self.functions: dict[str, _Function] = {}
        self.current_function: list[_Function] = []
        self.result = QuerySources()
        self._seen: set[tuple[str, str]] = set()
        self.depth = 0

    # -- recording ---------------------------------------------------------------

    def add(self, name: str, kind: SourceKind, token: Token, *, wildcard: bool = False) -> None:
        key = (name, kind)
        if not name or key in self._seen:
            return
        self._seen.add(key)
        custom = kind == "table" and name.lower().endswith("_cl")
        ref = SourceRef(name, kind, custom=custom, wildcard=wildcard, line=token.line)
        self.result.sources.append(ref)

    def bind(self, name: str) -> None:
        self.scopes[-1].add(name)

    def is_bound(self, name: str) -> bool:
        return any(name in scope for scope in self.scopes)

    # -- structure helpers ---------------------------------------------------------

    def word(self, index: int, hi: int) -> str:
        if index < hi and self.tokens[index].kind == "name":
            return self.tokens[index].text.lower()
        return ""

    def punct(self, index: int, hi: int, *texts: str) -> bool:
        return index < hi and self.tokens[index].is_punct(*texts)

    def close_of(self, index: int, hi: int) -> int:
        """Return the index of the bracket closing the one at ``index``, at most ``hi``."""
        return min(self.match.get(index, hi), hi)

    def split(self, lo: int, hi: int, separator: str) -> list[tuple[int, int]]:
        """Split ``[lo, hi)`` at ``separator`` tokens outside brackets."""
        parts: list[tuple[int, int]] = []
        start = index = lo
        while index < hi:
            token = self.tokens[index]
            if token.is_punct("(", "[", "{"):
                index = self.close_of(index, hi) + 1
                continue
            if token.is_punct(separator):
                parts.append((start, index))
                start = index + 1
            index += 1
        parts.append((start, hi))
        return [(a, b) for a, b in parts if a < b]

    def has_top_level_pipe(self, lo: int, hi: int) -> bool:
        return len(self.split(lo, hi, "|")) > 1 or (lo < hi and self.tokens[lo].is_punct("|"))

    def enter(self) -> bool:
        self.depth += 1
        return self.depth <= _MAX_DEPTH

    def leave(self) -> None:
        self.depth -= 1

    # -- statements ----------------------------------------------------------------

    def read_statements(self, lo: int, hi: int) -> None:
        for start, end in self.split(lo, hi, ";"):
            first = self.word(start, end)
            if first == "let":
                self.read_let(start + 1, end)
            elif first == "declare":
                self.bind_declared_parameters(start + 1, end)
            elif first not in _SKIPPED_STATEMENTS:
                self.read_tabular(start, end, tabular=True)

    def read_let(self, lo: int, hi: int) -> None:
        if not (self.word(lo, hi) and self.punct(lo + 1, hi, "=")):
            self.scan(lo, hi)
            return
        name = self.tokens[lo].text
        rhs = lo + 2
        if self.word(rhs, hi) == "view" and self.punct(rhs + 1, hi, "("):
            rhs += 1
        if self.punct(rhs, hi, "("):
            close = self.close_of(rhs, hi)
            if self.punct(close + 1, hi, "{"):
                self.read_function(name, rhs, close, hi)
                return
        self.read_tabular(rhs, hi, tabular=False)
        self.bind(name)

    def read_function(self, name: str, open_index: int, close: int, hi: int) -> None:
        function = self.read_parameters(open_index + 1, close)
        body_open = close + 1
        body_close = self.close_of(body_open, hi)
        self.functions[name] = function
        self.bind(name)
        if not self.enter():
            self.leave()
            return
        self.scopes.append(set(function.params))
        self.current_function.append(function)
        self.read_statements(body_open + 1, body_close)
        self.current_function.pop()
        self.scopes.pop()
        self.leave()

    def read_parameters(self, lo: int, hi: int) -> _Function:
        function = _Function([], {}, set())
        for start, end in self.split(lo, hi, ","):
            if self.tokens[start].kind != "name":
                continue
            position = len(function.params)
            function.params.append(self.tokens[start].text)
            if self.punct(start + 1, end, ":") and self.punct(start + 2, end, "("):
                function.tabular_params.add(position)
            for index in range(start, end - 1):
                if self.tokens[index].is_punct("=") and self.tokens[index + 1].kind == "string":
                    function.defaults[position] = self.tokens[index + 1].string_value
        return function

    def bind_declared_parameters(self, lo: int, hi: int) -> None:
        if self.word(lo, hi) == "query_parameters" and self.punct(lo + 1, hi, "("):
            close = self.close_of(lo + 1, hi)
            for param in self.read_parameters(lo + 2, close).params:
                self.bind(param)

    # -- tabular expressions -----------------------------------------------------------

    def read_tabular(self, lo: int, hi: int, *, tabular: bool) -> None:
        """Read ``source | operator | ...``, where ``tabular`` means the context expects a table."""
        if not self.enter():
            self.leave()
            return
        segments = self.split(lo, hi, "|")
        piped = len(segments) > 1 or self.punct(lo, hi, "|")
        for position, (start, end) in enumerate(segments):
            if position == 0 and start == lo and self.word(start, end) not in OPERATOR_WORDS:
                self.read_source(start, end, tabular=tabular or piped)
            else:
                self.read_operator(start, end)
        self.leave()

    def read_source(self, lo: int, hi: int, *, tabular: bool, pattern: bool = False) -> None:
        """Read a data source. ``pattern`` allows wildcards, as union, search and find do."""
        token = self.tokens[lo]
        if token.is_punct("("):
            close = self.close_of(lo, hi)
            self.read_tabular(lo + 1, close, tabular=True)
            self.scan(close + 1, hi)
            return
        if token.kind != "name":
            self.scan(lo, hi)
            return
        handler = _SOURCE_KEYWORDS.get(token.text.lower())
        if handler is not None:
            handler(self, lo, hi)
            return
        self.read_named_source(lo, hi, tabular=tabular, pattern=pattern)

    def read_named_source(self, lo: int, hi: int, *, tabular: bool, pattern: bool) -> None:
        token = self.tokens[lo]
        is_call = self.punct(lo + 1, hi, "(")
        if is_call:
            close = self.close_of(lo + 1, hi)
            rest = close + 1
            self.read_call(lo, close, tabular=tabular)
        else:
            rest = lo + 1
            pattern_end = self.wildcard_end(lo, hi) if pattern else rest
            if pattern_end > rest:
                name_pattern = "".join(t.text for t in self.tokens[lo:pattern_end])
                self.add(name_pattern, "table", token, wildcard=True)
                self.scan(pattern_end, hi)
                return
            if rest == hi or self.word(rest, hi) in ("on", "with"):
                self.read_bare_name(token)
        self.scan(rest, hi)

    def read_bare_name(self, token: Token) -> None:
        name = token.text
        lowered = name.lower()
        if self.is_bound(name) or lowered in _SCALAR_WORDS or lowered in OPERATOR_WORDS:
            return
        if name.startswith("$"):
            return
        if is_asim_parser(name):
            self.add(name, "asim_parser", token)
        else:
            self.add(name, "table", token)

    def read_call(self, lo: int, close: int, *, tabular: bool) -> None:
        """Read ``name(...)`` in a place where a table could stand."""
        token = self.tokens[lo]
        name = token.text
        lowered = name.lower()
        args_lo = lo + 2
        if lowered == "table":
            self.read_table_call(args_lo, close)
        elif lowered == _WATCHLIST_FUNCTION:
            alias = self.first_string(args_lo, close)
            self.add(alias or "?", "watchlist", token)
        elif lowered in ("materialize", "toscalar"):
            self.read_tabular(args_lo, close, tabular=True)
            return
        elif name in self.functions and self.is_bound(name):
            self.read_invocation(self.functions[name], args_lo, close)
        elif is_asim_parser(name):
            self.add(name, "asim_parser", token)
        elif tabular and not self.is_bound(name) and lowered not in _SCALAR_WORDS:
            self.add(name, "function", token)
        self.scan(args_lo, close)

    def read_table_call(self, lo: int, hi: int) -> None:
        if lo >= hi:
            return
        argument = self.tokens[lo]
        if argument.kind == "string":
            self.add(argument.string_value, "table", argument)
        elif argument.kind == "name" and self.current_function:
            function = self.current_function[-1]
            if argument.text in function.params:
                function.table_params.append(function.params.index(argument.text))

    def read_invocation(self, function: _Function, lo: int, hi: int) -> None:
        arguments = self.split(lo, hi, ",")
        for index in sorted(function.tabular_params):
            if index < len(arguments):
                start, end = arguments[index]
                self.read_source(start, end, tabular=True)
        for index in dict.fromkeys(function.table_params):
            value = function.defaults.get(index)
            anchor = self.tokens[lo - 1]
            if index < len(arguments):
                start, end = arguments[index]
                if end - start == 1 and self.tokens[start].kind == "string":
                    value = self.tokens[start].string_value
                    anchor = self.tokens[start]
            if value:
                self.add(value, "table", anchor)

    def wildcard_end(self, lo: int, hi: int) -> int:
        """Return the end of a name pattern such as Security* or Device*Events at ``lo``."""
        end = lo + 1
        has_star = False
        while end < hi and self.tokens[end].start == self.tokens[end - 1].end:
            token = self.tokens[end]
            if not (token.is_punct("*") or token.kind == "name"):
                break
            has_star = has_star or token.is_punct("*")
            end += 1
        return end if has_star else lo + 1

    def first_string(self, lo: int, hi: int) -> str:
        for index in range(lo, hi):
            if self.tokens[index].kind == "string":
                return self.tokens[index].string_value
        return ""

    # -- source keywords -------------------------------------------------------------

    def read_union(self, lo: int, hi: int) -> None:
        index = self.skip_options(lo + 1, hi)
        for start, end in self.split(index, hi, ","):
            if end - start == 1 and self.tokens[start].is_punct("*"):
                self.add("*", "table", self.tokens[start], wildcard=True)
            else:
                self.read_source(start, end, tabular=True, pattern=True)

    def read_search(self, lo: int, hi: int) -> None:
        index = lo + 1
        while index < hi and not (self.word(index, hi) == "in" and self.punct(index + 1, hi, "(")):
            index += 1
        if index >= hi:
            # Without "in (...)", search and find read every table in scope.
            self.add("*", "table", self.tokens[lo], wildcard=True)
            self.scan(lo + 1, hi)
            return
        close = self.close_of(index + 1, hi)
        for start, end in self.split(index + 2, close, ","):
            self.read_source(start, end, tabular=True, pattern=True)
        self.scan(close + 1, hi)

    def read_externaldata(self, lo: int, hi: int) -> None:
        self.scan(self.read_externaldata_urls(lo, hi), hi)

    def read_externaldata_urls(self, lo: int, hi: int) -> int:
        """Record the URLs of ``externaldata(...) [urls]`` and return the index after them."""
        index = lo + 1
        if self.punct(index, hi, "("):
            index = self.close_of(index, hi) + 1
        if self.punct(index, hi, "["):
            close = self.close_of(index, hi)
            urls = self.result.externaldata_urls
            for token in self.tokens[index + 1 : close]:
                if token.kind == "string" and token.string_value not in urls:
                    urls.append(token.string_value)
            index = close + 1
        return index

    def read_nothing(self, lo: int, hi: int) -> None:
        self.scan(lo + 1, hi)

    def read_datatable(self, lo: int, hi: int) -> None:
        """Skip ``datatable(...) [...]``: its rows are literals, not sources."""

    def read_qualified(self, lo: int, hi: int) -> None:
        # cluster('c').database('d').Table or database('d').Table: the table is the last name.
        index = lo
        while index < hi:
            if self.punct(index + 1, hi, "("):
                index = self.close_of(index + 1, hi) + 1
            else:
                index += 1
            if self.punct(index, hi, "."):
                index += 1
                continue
            break
        last = index - 1 if index > lo else lo
        if last < hi and self.tokens[last].kind == "name" and not self.punct(last + 1, hi, "("):
            self.read_bare_name(self.tokens[last])
        self.scan(index, hi)

    def skip_options(self, index: int, hi: int) -> int:
        """Skip ``name=value`` options such as kind=outer or hint.strategy=shuffle."""
        while index < hi and self.tokens[index].kind == "name":
            probe = index + 1
            while self.punct(probe, hi, ".") and self.word(probe + 1, hi):
                probe += 2
            if not self.punct(probe, hi, "="):
                break
            index = probe + 2
        return index

    # -- operators -----------------------------------------------------------------------

    def read_operator(self, lo: int, hi: int) -> None:
        operator = self.word(lo, hi)
        if operator in ("join", "lookup"):
            self.read_join(lo + 1, hi)
        elif operator == "union":
            self.read_union(lo, hi)
        elif operator == "as":
            index = self.skip_options(lo + 1, hi)
            if self.word(index, hi):
                self.bind(self.tokens[index].text)
        else:
            self.scan(lo + 1, hi)

    def read_join(self, lo: int, hi: int) -> None:
        index = self.skip_options(lo, hi)
        if index >= hi:
            return
        end = index + 1
        if self.punct(index, hi, "("):
            end = self.close_of(index, hi) + 1
        elif self.punct(index + 1, hi, "("):
            end = self.close_of(index + 1, hi) + 1
        self.read_source(index, end, tabular=True)
        self.scan(end, hi)

    def scan(self, lo: int, hi: int) -> None:
        """Look inside an expression for sub-queries, table() calls and externaldata."""
        if not self.enter():
            self.leave()
            return
        index = lo
        while index < hi:
            token = self.tokens[index]
            if token.kind == "name" and self.punct(index + 1, hi, "("):
                index = self.scan_call(index, self.close_of(index + 1, hi), hi)
                continue
            if token.is_punct("(", "{", "["):
                close = self.close_of(index, hi)
                if token.is_punct("(") and self.has_top_level_pipe(index + 1, close):
                    self.read_tabular(index + 1, close, tabular=True)
                else:
                    self.scan(index + 1, close)
                index = close + 1
                continue
            index += 1
        self.leave()

    def scan_call(self, index: int, close: int, hi: int) -> int:
        """Read a call met inside an expression and return the index to scan on from."""
        lowered = self.tokens[index].text.lower()
        if lowered == "externaldata":
            return self.read_externaldata_urls(index, hi)
        if lowered != "datatable":
            self.read_call(index, close, tabular=False)
        return close + 1


_SOURCE_KEYWORDS = {
    "union": _Reader.read_union,
    "search": _Reader.read_search,
    "find": _Reader.read_search,
    "externaldata": _Reader.read_externaldata,
    "datatable": _Reader.read_datatable,
    "print": _Reader.read_nothing,
    "range": _Reader.read_nothing,
    "evaluate": _Reader.read_nothing,
    "cluster": _Reader.read_qualified,
    "database": _Reader.read_qualified,
}


def _match_brackets(tokens: list[Token]) -> dict[int, int]:
    """Map the index of each opening bracket to its closing one, or to the end if unclosed."""
    pairs = {"(": ")", "[": "]", "{": "}"}
    match: dict[int, int] = {}
    stack: list[int] = []
    for index, token in enumerate(tokens):
        if token.kind != "punct":
            continue
        if token.text in pairs:
            stack.append(index)
        elif stack and pairs[tokens[stack[-1]].text] == token.text:
            match[stack.pop()] = index
        # A stray closing bracket of another type is ignored rather than closing early.
    for index in stack:
        match[index] = len(tokens)
    return match
