"""Ranked full-text search: SQLite FTS5 by default, PostgreSQL text search on PostgreSQL.

Both index the title, description, query, tags, techniques and tables of each rule. A
search text is split into words and every word must match (a word is a prefix for the
last one, so typing "power" finds "PowerShell"). Matches are marked with the control
characters START and END in snippets, which the web layer escapes and then turns into
``<mark>`` elements, so rule text never reaches the page unescaped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Float,
    String,
    and_,
    bindparam,
    column,
    func,
    literal_column,
    select,
    text,
)

from socfeed.model import Rule
from socfeed.store.schema import rules

START = "\x02"
END = "\x03"
_WORD = re.compile(r"[\w.\-]+", re.UNICODE)

_FTS_CREATE = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS rules_fts USING fts5("
    "key UNINDEXED, title, description, query, extra, "
    "tokenize = 'unicode61 remove_diacritics 2')"
)
_PG_INDEX = (
    "CREATE INDEX IF NOT EXISTS ix_rules_search_tsv ON rules "
    "USING gin (to_tsvector('simple', search_text))"
)


def install(engine: Engine) -> None:
    """Create the search index structures of the engine's dialect (idempotent)."""
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(text(_FTS_CREATE))
        elif engine.dialect.name == "postgresql":
            conn.execute(text(_PG_INDEX))


def words(query_text: str) -> list[str]:
    """Return the search words of a query text, lower-cased, without FTS syntax."""
    return [w.lower() for w in _WORD.findall(query_text)][:20]


def fts5_query(query_text: str) -> str:
    """Build an FTS5 MATCH expression in which every word is a quoted phrase.

    Quoting keeps user input from being read as FTS5 syntax (AND, NEAR, column filters).
    """
    parts = [f'"{w}"' for w in words(query_text)]
    if parts:
        parts[-1] += "*"
    return " ".join(parts)


def index_rows(conn: Connection, batch: Sequence[Rule]) -> None:
    """Add rules to the SQLite FTS5 table; PostgreSQL indexes the rules table itself."""
    if conn.dialect.name != "sqlite" or not batch:
        return
    conn.execute(
        text(
            "INSERT INTO rules_fts (key, title, description, query, extra) "
            "VALUES (:key, :title, :description, :query, :extra)"
        ),
        [
            {
                "key": r.key,
                "title": r.title,
                "description": r.description,
                "query": r.query,
                "extra": " ".join([*r.tags, *r.techniques, *r.tables()]),
            }
            for r in batch
        ],
    )


def unindex_source(conn: Connection, source: str, keep: Sequence[str]) -> None:
    """Remove a source's rules from the SQLite FTS5 table, except the kept keys."""
    if conn.dialect.name != "sqlite":
        return
    # A source's keys all start with "<source>:", which lets FTS5 filter without the rules
    # table; the kept keys are few (files that failed to parse this time).
    doomed = conn.execute(
        select(rules.c.key).where(rules.c.source == source, rules.c.key.not_in(keep))
    ).scalars()
    stmt = text("DELETE FROM rules_fts WHERE key IN :keys").bindparams(
        bindparam("keys", expanding=True)
    )
    keys = list(doomed)
    for start in range(0, len(keys), 500):
        conn.execute(stmt, {"keys": keys[start : start + 500]})


def match_condition(dialect: str, query_text: str) -> ColumnElement[bool] | None:
    """Return the WHERE condition selecting rules that match every word, or None."""
    if not words(query_text):
        return None
    if dialect == "sqlite":
        matching = (
            text("SELECT key FROM rules_fts WHERE rules_fts MATCH :fts")
            .bindparams(fts=fts5_query(query_text))
            .columns(column("key", String))
        )
        return rules.c.key.in_(matching)
    if dialect == "postgresql":
        return _pg_vector().op("@@")(_pg_query(query_text))
    # Other databases: every word must appear in the lower-cased search text.
    return and_(*[rules.c.search_text.contains(w, autoescape=True) for w in words(query_text)])


def ranked(dialect: str, query_text: str) -> tuple[Any | None, Any | None]:
    """Return (subquery to join on ``key``, expression to ORDER BY), best match first.

    SQLite ranks with bm25 over the FTS5 table (title weighted most, then tags and ids,
    then description, then query), joined once rather than matched again per row. Both
    parts are None when the text has no words or the database has no ranking.
    """
    if not words(query_text):
        return None, None
    if dialect == "sqlite":
        scored = text(
            "SELECT key, bm25(rules_fts, 0.0, 10.0, 4.0, 1.0, 6.0) AS score "
            "FROM rules_fts WHERE rules_fts MATCH :fts"
        ).bindparams(fts=fts5_query(query_text))
        sub = scored.columns(column("key", String), column("score", Float)).subquery("ranked")
        return sub, sub.c.score.asc()
    if dialect == "postgresql":
        return None, func.ts_rank(_pg_vector(), _pg_query(query_text)).desc()
    return None, None


def snippets(conn: Connection, keys: Sequence[str], query_text: str) -> dict[str, str]:
    """Return a short marked excerpt of the best matching field for each key."""
    if not keys or not words(query_text):
        return {}
    if conn.dialect.name == "sqlite":
        # One excerpt per column (1 title, 2 description, 3 query, 4 tags and ids); the
        # description or query explains a hit better than the title the row already shows.
        columns = ", ".join(
            f"snippet(rules_fts, {index}, :start, :end, '…', 24) AS c{index}"
            for index in (1, 2, 3, 4)
        )
        stmt = text(
            f"SELECT key, {columns} FROM rules_fts WHERE rules_fts MATCH :fts AND key IN :keys"
        ).bindparams(bindparam("keys", expanding=True))
        rows = conn.execute(
            stmt, {"start": START, "end": END, "fts": fts5_query(query_text), "keys": list(keys)}
        )
        excerpts: dict[str, str] = {}
        for row in rows:
            marked = [c for c in (row.c2, row.c3, row.c1, row.c4) if c and START in c]
            if marked:
                excerpts[row.key] = marked[0]
        return excerpts
    if conn.dialect.name == "postgresql":
        options = f"StartSel={START}, StopSel={END}, MaxWords=24, MinWords=8"
        stmt = select(
            rules.c.key,
            func.ts_headline(
                "simple",
                literal_column(
                    "concat_ws(' ', rules.title, (rules.doc::json)->>'description', "
                    "(rules.doc::json)->>'query')"
                ),
                _pg_query(query_text),
                options,
            ),
        ).where(rules.c.key.in_(keys))
        return {key: excerpt for key, excerpt in conn.execute(stmt)}
    return {}


def _pg_vector() -> Any:
    return func.to_tsvector(literal_column("'simple'"), rules.c.search_text)


def _pg_query(query_text: str) -> Any:
    # plainto_tsquery takes any text safely and ANDs its words; it has no prefix matching.
    return func.plainto_tsquery(literal_column("'simple'"), " ".join(words(query_text)))
