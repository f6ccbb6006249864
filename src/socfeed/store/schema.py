"""Tables of the rule store, shared by SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

# One row per configured source, rewritten by every ingest of that source.
sources = Table(
    "sources",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("format", String(40), nullable=False),
    Column("repo_url", Text, nullable=False, default=""),
    Column("web_url", Text, nullable=False, default=""),
    Column("licence", Text, nullable=False, default=""),
    Column("official", Boolean, nullable=False, default=False),
    Column("vendor", String(100), nullable=False, default=""),
    Column("commit", String(64)),
    Column("ref", String(200)),
    Column("retrieved_at", String(40), nullable=False, default=""),
    Column("location", Text, nullable=False, default=""),
    Column("is_sample", Boolean, nullable=False, default=False),
    Column("files_seen", Integer, nullable=False, default=0),
    Column("files_with_rules", Integer, nullable=False, default=0),
    Column("files_failed", Integer, nullable=False, default=0),
    Column("rules", Integer, nullable=False, default=0),
    Column("duplicates", Integer, nullable=False, default=0),
)

rules = Table(
    "rules",
    metadata,
    # "<source>:<rule_id>", with a path suffix for a repeated id within the source.
    Column("key", String(400), primary_key=True),
    Column("source", String(100), ForeignKey("sources.name"), nullable=False),
    Column("rule_id", String(300), nullable=False),
    Column("path", Text, nullable=False),
    Column("query_index", Integer, nullable=False, default=0),
    Column("title", Text, nullable=False),
    Column("language", String(40), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("severity", String(20)),
    Column("status", String(40)),
    Column("official", Boolean, nullable=False, default=False),
    Column("created", String(10)),
    Column("modified", String(10)),
    Column("retrieved_at", String(40), nullable=False),
    # modified, else created, else the retrieval date: the feed's "newest first" order.
    Column("sort_date", String(40), nullable=False),
    Column("content_hash", String(64), nullable=False),
    # Lower-cased title, description, query and tags for the search box.
    Column("search_text", Text, nullable=False),
    # The whole normalized rule as JSON (Rule.to_dict()).
    Column("doc", Text, nullable=False),
    # Set when the file failed to parse in the latest ingest and this row was kept from an
    # earlier one: the reason it was not refreshed.
    Column("stale_reason", Text),
    Index("ix_rules_source", "source"),
    Index("ix_rules_sort", "sort_date", "retrieved_at"),
    Index("ix_rules_source_rule_id", "source", "rule_id"),
)

# Facet values of each rule: technique, tactic, table, tag. One row per value.
rule_facets = Table(
    "rule_facets",
    metadata,
    Column("rule_key", String(400), ForeignKey("rules.key", ondelete="CASCADE"), nullable=False),
    Column("facet", String(20), nullable=False),
    Column("value", String(300), nullable=False),
    Index("ix_rule_facets_value", "facet", "value"),
    Index("ix_rule_facets_rule", "rule_key"),
)

parse_errors = Table(
    "parse_errors",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(100), nullable=False),
    Column("path", Text, nullable=False),
    Column("line", Integer),
    Column("column", Integer),
    Column("reason", Text, nullable=False),
    Index("ix_parse_errors_source", "source"),
)
