"""The socfeed command line: update, serve, search, show, sources."""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from socfeed.errors import SocfeedError
from socfeed.model import KINDS, SEVERITIES, Rule
from socfeed.store import FeedQuery, Store, open_store

app = typer.Typer(
    help="Collect public detection and hunting rules, normalize them and serve the SOC feed.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        envvar="SOCFEED_DB",
        help="SQLite file or postgresql:// URL of the store [default: user data folder].",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
DebugOption = Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")]


def fail(message: str, code: int = 1) -> NoReturn:
    """Print a one-line error in red and exit."""
    err.print(f"[bold red]error:[/] {message}", highlight=False, markup=True)
    raise typer.Exit(code)


def setup_logging(debug: bool) -> None:
    """Send log lines to stderr: warnings by default, everything with --debug."""
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def store_for(db: str | None) -> Store:
    """Open the store or exit with a one-line error."""
    try:
        return open_store(db)
    except SocfeedError as exc:
        fail(f"{exc}; check --db or SOCFEED_DB")


ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        envvar="SOCFEED_CONFIG",
        help="TOML file that adds, changes or disables sources.",
        dir_okay=False,
    ),
]


@app.command()
def update(
    source: Annotated[
        list[str] | None, typer.Option("--source", help="Only this source (repeatable).")
    ] = None,
    path: Annotated[
        Path | None,
        typer.Option(help="Ingest this local folder as the one --source (no fetching)."),
    ] = None,
    mirror: Annotated[
        Path | None,
        typer.Option(envvar="SOCFEED_MIRROR", help="Read every source from DIR/<source name>."),
    ] = None,
    attack_stix: Annotated[
        str | None,
        typer.Option(
            envvar="SOCFEED_ATTACK_STIX",
            help="URL or file of the Enterprise ATT&CK STIX bundle, or 'none' "
            "[default: MITRE's attack-stix-data].",
        ),
    ] = None,
    suggest: Annotated[
        bool,
        typer.Option(
            help="Train the technique classifier on the store and suggest techniques for "
            "rules that map none (about 40 s over all default sources)."
        ),
    ] = True,
    config: ConfigOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Fetch every enabled source (or the named ones), parse, enrich and store its rules."""
    from socfeed.attack.knowledge import KnowledgeBase
    from socfeed.attack.refresh import refresh_index
    from socfeed.config import load_settings
    from socfeed.enrich import Enricher
    from socfeed.enrich.crosslinks import refresh_links
    from socfeed.enrich.llm import LlmGenerator, load_llm_settings
    from socfeed.update import update_sources

    setup_logging(debug)
    try:
        settings = load_settings(config, db=db)
        if mirror is not None:
            settings = dataclasses.replace(settings, mirror_dir=mirror)
        store = store_for(settings.db)
        index_path, attack_note = refresh_index(attack_stix)
        err.print(attack_note, highlight=False)
        knowledge_base = KnowledgeBase(index_path)
        llm_settings = load_llm_settings()
        generator = LlmGenerator(llm_settings, store.engine) if llm_settings else None
        with _progress() as bars:
            outcomes = update_sources(
                settings,
                store,
                names=source or [],
                path=path,
                enricher=Enricher(knowledge_base, generator),
                progress=bars,
            )
        links = refresh_links(store)
        if suggest:
            from socfeed.enrich.infer import refresh_suggestions

            suggested = refresh_suggestions(store)
            err.print(f"technique suggestions: {suggested}", highlight=False)
    except SocfeedError as exc:
        if debug:
            raise
        fail(str(exc))
    if generator is not None:
        err.print(f"model texts: {generator.stats.to_dict()}", highlight=False)
        generator.close()
    _print_outcomes(outcomes, links, as_json)
    # A source that could not be read keeps its stored rules and is reported above; the
    # command fails only when a named folder is missing or nothing at all was ingested.
    if all(o.report is None for o in outcomes) or (path is not None and not outcomes[0].report):
        raise typer.Exit(1)


@contextmanager
def _progress() -> Iterator[Callable[[str, int], Callable[[int, int], None]]]:
    """Yield a factory of per-source progress callbacks drawing rich progress bars."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    columns = (
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=False) as progress:

        def start(name: str, total: int) -> Callable[[int, int], None]:
            task = progress.add_task(name, total=total)

            def advance(done: int, _total: int) -> None:
                progress.update(task, completed=done)

            return advance

        yield start


def _print_outcomes(outcomes: list[Any], links: Any, as_json: bool) -> None:
    rows = []
    for outcome in outcomes:
        record = outcome.report.record if outcome.report else None
        rows.append(
            {
                "source": outcome.source,
                "mode": outcome.mode,
                "files_seen": record.files_seen if record else None,
                "files_with_rules": record.files_with_rules if record else None,
                "files_failed": record.files_failed if record else None,
                "rules": record.rules if record else None,
                "duplicates": record.duplicates if record else None,
                "commit": record.commit if record else None,
                "note": outcome.note,
            }
        )
    if as_json:
        out.print_json(json.dumps({"sources": rows, "links": vars(links)}))
        return
    view = Table(title="update")
    for column in ("source", "mode", "files", "with rules", "failed", "rules", "commit"):
        view.add_column(column)
    for row in rows:
        view.add_row(
            row["source"],
            row["mode"],
            *(
                str(row[k]) if row[k] is not None else "-"
                for k in ("files_seen", "files_with_rules", "files_failed", "rules")
            ),
            (row["commit"] or "unknown")[:12],
        )
    out.print(view)
    for row in rows:
        if row["note"]:
            err.print(f"[yellow]{row['source']}:[/] {row['note']}", highlight=False)
    if any(row["mode"] == "sample" for row in rows):
        err.print(
            "[yellow]note:[/] some sources show the sample shipped with socfeed, not the live "
            "repositories; set SOCFEED_MIRROR or allow network access for the full feed.",
            highlight=False,
        )


@app.command()
def serve(
    db: DbOption = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port to listen on.")] = 8000,
    debug: DebugOption = False,
) -> None:
    """Serve the feed, rule pages, coverage and the JSON API over HTTP."""
    import uvicorn

    from socfeed.web.app import create_app

    setup_logging(debug)
    store = store_for(db)
    out.print(f"socfeed serving {store.url} on http://{host}:{port}/", highlight=False)
    uvicorn.run(create_app(store), host=host, port=port, log_level="info" if debug else "warning")


def _filters(
    source: list[str] | None,
    language: list[str] | None,
    severity: list[str] | None,
    kind: list[str] | None,
    technique: list[str] | None,
    table: list[str] | None,
) -> dict[str, list[str]]:
    for value in severity or []:
        if value not in SEVERITIES:
            fail(f"invalid --severity {value!r}; use one of {', '.join(SEVERITIES)}")
    for value in kind or []:
        if value not in KINDS:
            fail(f"invalid --kind {value!r}; use one of {', '.join(KINDS)}")
    return {
        "source": source or [],
        "language": language or [],
        "severity": severity or [],
        "kind": kind or [],
        "technique": [t.upper() for t in technique or []],
        "table": table or [],
    }


def _rule_summary(rule: Rule) -> dict[str, Any]:
    return {
        "key": rule.key,
        "title": rule.title,
        "source": rule.source,
        "language": rule.language,
        "kind": rule.kind,
        "severity": rule.severity,
        "techniques": rule.techniques,
        "tables": rule.tables(),
        "modified": rule.modified,
        "url": rule.url,
    }


@app.command()
def search(
    text: Annotated[str, typer.Argument(help="Words to find in title, description or query.")] = "",
    source: Annotated[list[str] | None, typer.Option(help="Only this source (repeatable).")] = None,
    language: Annotated[list[str] | None, typer.Option(help="kql, sigma, spl, eql, ...")] = None,
    severity: Annotated[list[str] | None, typer.Option(help="informational ... critical.")] = None,
    kind: Annotated[list[str] | None, typer.Option(help="detection or hunting.")] = None,
    technique: Annotated[list[str] | None, typer.Option(help="ATT&CK id, e.g. T1566.")] = None,
    table: Annotated[list[str] | None, typer.Option(help="Table or data source name.")] = None,
    limit: Annotated[int, typer.Option(help="Maximum rules to print.")] = 20,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Search the stored rules, newest first."""
    filters = _filters(source, language, severity, kind, technique, table)
    query = FeedQuery(text=text, per_page=max(1, limit), **filters)
    page = store_for(db).feed(query, with_facets=False)
    if as_json:
        payload = {"total": page.total, "rules": [_rule_summary(r) for r in page.rules]}
        out.print_json(json.dumps(payload, ensure_ascii=False))
        return
    table_view = Table(title=f"{page.total} rules", show_lines=False)
    for column in ("key", "title", "language", "severity", "techniques"):
        table_view.add_column(column, overflow="fold")
    for rule in page.rules:
        table_view.add_row(
            rule.key, rule.title, rule.language, rule.severity or "", ", ".join(rule.techniques)
        )
    out.print(table_view)


@app.command()
def export(
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="csv, jsonl, navigator, stix or atom.")
    ],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write [default: stdout].")
    ] = None,
    text: Annotated[str, typer.Option("--query", "-q", help="Search text.")] = "",
    source: Annotated[list[str] | None, typer.Option(help="Only this source (repeatable).")] = None,
    language: Annotated[list[str] | None, typer.Option(help="kql, sigma, spl, eql, ...")] = None,
    severity: Annotated[list[str] | None, typer.Option(help="informational ... critical.")] = None,
    kind: Annotated[list[str] | None, typer.Option(help="detection or hunting.")] = None,
    technique: Annotated[list[str] | None, typer.Option(help="ATT&CK id, e.g. T1566.")] = None,
    table: Annotated[list[str] | None, typer.Option(help="Table or data source name.")] = None,
    base_url: Annotated[
        str, typer.Option(help="Where the feed is served, for links to rule pages.")
    ] = "http://127.0.0.1:8000",
    db: DbOption = None,
) -> None:
    """Export the rules matching the filters as CSV, JSON Lines, Navigator, STIX or Atom."""
    from socfeed.export import ExportContext, export_names, export_rules

    if fmt not in export_names():
        fail(f"unknown export format {fmt!r}; use one of {', '.join(export_names())}")
    filters = _filters(source, language, severity, kind, technique, table)
    query = FeedQuery(text=text, **filters)
    store = store_for(db)
    context = ExportContext(base_url=base_url.rstrip("/"))
    try:
        if output is None:
            written = export_rules(store, query, fmt, sys.stdout, context)
        else:
            with output.open("w", encoding="utf-8", newline="") as stream:
                written = export_rules(store, query, fmt, stream, context)
    except BrokenPipeError:
        # The reader of stdout (head, less) closed early; that is not an error.
        sys.stderr.close()
        raise typer.Exit(0) from None
    except OSError as exc:
        fail(f"cannot write {output or 'stdout'}: {exc.strerror}")
    err.print(f"exported {written} rules as {fmt}", highlight=False)


@app.command()
def show(
    rule: Annotated[str, typer.Argument(help="Rule key, rule id or file path (suffix).")],
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one rule with its query and enrichment."""
    store = store_for(db)
    found = store.rule(rule)
    if found is None:
        keys = store.find_rule_keys(rule)
        if not keys:
            fail(f"no rule matches {rule!r}; find keys with 'socfeed search'")
        if len(keys) > 1:
            fail(f"{rule!r} matches {len(keys)} rules ({', '.join(keys[:5])}); give a full key")
        found = store.rule(keys[0])
    assert found is not None
    if as_json:
        out.print_json(json.dumps(found.to_dict(), ensure_ascii=False, default=str))
        return
    out.print(f"[bold]{found.title}[/]", highlight=False)
    details = {
        "key": found.key,
        "source": f"{found.source} ({'official' if found.official else 'community'})",
        "language": found.language,
        "kind": found.kind,
        "severity": found.severity or "not set",
        "tactics": ", ".join(found.tactics),
        "techniques": ", ".join(found.techniques),
        "data sources": ", ".join(found.tables()),
        "original": found.url,
        "commit": found.commit or "unknown",
        "retrieved": found.retrieved_at,
    }
    for name, value in details.items():
        out.print(f"[cyan]{name:>12}[/] {value}", highlight=False)
    out.print()
    out.print(found.query, markup=False, highlight=False)
    for warning in found.warnings:
        err.print(f"[yellow]warning:[/] {warning}", highlight=False)


@app.command()
def sources(db: DbOption = None, as_json: JsonOption = False) -> None:
    """List each source's latest ingest: files seen, rules, errors, commit, retrieval time."""
    records = store_for(db).sources()
    if as_json:
        out.print_json(json.dumps([vars(r) for r in records], ensure_ascii=False))
        return
    view = Table(title="sources")
    for column in ("source", "files seen", "with rules", "failed", "rules", "dups", "commit"):
        view.add_column(column)
    view.add_column("retrieved")
    for r in records:
        commit = (r.commit or "unknown")[:12] + (" (sample)" if r.is_sample else "")
        view.add_row(
            r.name,
            str(r.files_seen),
            str(r.files_with_rules),
            str(r.files_failed),
            str(r.rules),
            str(r.duplicates),
            commit,
            r.retrieved_at,
        )
    out.print(view)


@app.command("build-site")
def build_site_command(
    directory: Annotated[Path, typer.Argument(help="Folder to write the site into.")],
    base_path: Annotated[str, typer.Option(help="URL path the site is served under.")] = "/",
    origin: Annotated[
        str, typer.Option(help="Site origin, e.g. https://rules.example.org, for Atom links.")
    ] = "",
    feed_pages: Annotated[int, typer.Option(help="Feed pages to render, newest first.")] = 20,
    workers: Annotated[
        int | None, typer.Option(help="Processes rendering rule pages [default: CPU count].")
    ] = None,
    file_links: Annotated[
        bool, typer.Option(help="Link to index.html files, for hosts that serve no folders.")
    ] = False,
    search_query_text: Annotated[
        bool, typer.Option(help="Also index query text for the static search (larger index).")
    ] = False,
    db: DbOption = None,
    as_json: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Write the whole feed as a static site (pages, JSON, Atom, search) for any web host."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from socfeed.site import build_site

    setup_logging(debug)
    store = store_for(db)
    columns = ("pages", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=err) as progress:
            task = progress.add_task("pages", total=None)

            def advance(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            report = build_site(
                store,
                directory,
                base_path=base_path,
                origin=origin,
                feed_pages=feed_pages,
                directory_urls=not file_links,
                search_query_text=search_query_text,
                workers=workers,
                progress=advance,
            )
    except SocfeedError as exc:
        if debug:
            raise
        fail(str(exc))
    summary = {
        "path": str(report.path),
        "pages": report.pages,
        "rules": report.rules,
        "files": report.files,
        "bytes": report.bytes,
        "seconds": round(report.seconds, 1),
        "failed": report.failed,
    }
    if as_json:
        out.print_json(json.dumps(summary))
    else:
        out.print(
            f"site written to {report.path}: {report.pages} pages, {report.rules} rules, "
            f"{report.files} files, {report.bytes / 1e6:.1f} MB in {report.seconds:.0f} s",
            highlight=False,
        )
        for failure in report.failed:
            err.print(f"[red]failed:[/] {failure}", highlight=False)
    if report.failed:
        raise typer.Exit(1)


attack_app = typer.Typer(help="Build the ATT&CK index and report how rules map to it.")
app.add_typer(attack_app, name="attack")


@attack_app.command("build")
def attack_build(
    stix: Annotated[Path, typer.Option(help="Enterprise ATT&CK STIX bundle file.")],
    output: Annotated[
        Path | None, typer.Option(help="Index file to write [default: the user data folder].")
    ] = None,
) -> None:
    """Rebuild the compact ATT&CK index from a STIX bundle file."""
    from socfeed.attack.refresh import build_index_from_bundle

    try:
        path = build_index_from_bundle(stix, output)
    except SocfeedError as exc:
        fail(str(exc))
    out.print(f"ATT&CK index written to {path}", highlight=False)


@attack_app.command("report")
def attack_report(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Count, per source, how the rules' technique ids resolved: ok, revoked, unknown..."""
    from collections import Counter, defaultdict

    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for rule in store_for(db).iter_rules():
        enrichment = rule.extra.get("enrichment") or {}
        resolutions = enrichment.get("resolutions", [])
        counts[rule.source]["rules"] += 1
        if not resolutions:
            counts[rule.source]["no ids"] += 1
        for resolution in resolutions:
            counts[rule.source][resolution["status"]] += 1
    statuses = ["rules", "no ids", "ok", "revoked", "deprecated", "unknown", "invalid"]
    if as_json:
        payload = {source: dict(counter) for source, counter in sorted(counts.items())}
        out.print_json(json.dumps(payload))
        return
    view = Table(title="technique ids by resolution")
    view.add_column("source")
    for status in statuses:
        view.add_column(status, justify="right")
    for source, counter in sorted(counts.items()):
        view.add_row(source, *(str(counter[s]) for s in statuses))
    out.print(view)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
