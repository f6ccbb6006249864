"""Measure ingest speed against its floor: parsing the same files with PyYAML's C loader.

For each YAML source of the corpora, the floor is reading every rule file and loading it
with yaml.CSafeLoader, nothing else. The ingest stages are then timed on the same files:
parse (the format parser, which includes the floor), enrich (ATT&CK, notes, templates)
and store (one SQLite transaction). Each ratio is a stage's time divided by the floor's time.

Usage: .venv/bin/python bench/bench_ingest.py [--corpus ../shared/corpus] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from socfeed.config import load_settings
from socfeed.enrich import Enricher
from socfeed.formats import get_format
from socfeed.ingest import parse_files, stamp_rules
from socfeed.sources import fetch
from socfeed.store import SourceRecord, open_store
from socfeed.update import build_source_input

YAML_SOURCES = ("sigma", "splunk-security-content", "azure-sentinel")
DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


def best_of(repeat: int, run: Callable[[], object]) -> float:
    """Return the smallest wall time of ``repeat`` runs, in seconds."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def yaml_floor(root: Path, files: list[str]) -> None:
    for path in files:
        text = (root / path).read_bytes().decode("utf-8-sig")
        try:
            list(yaml.load_all(text, Loader=yaml.CSafeLoader))
        except yaml.YAMLError:
            # Broken upstream files are part of the corpus; the floor still read them.
            continue


def bench_source(corpus: Path, name: str, repeat: int) -> dict[str, float]:
    settings = load_settings(environ={"SOCFEED_MIRROR": str(corpus)})
    source = settings.source(name)
    checkout = fetch(source, settings)
    source_input = build_source_input(settings, source, checkout)
    fmt = get_format(source.format)
    context = fmt.load_context(checkout.root) if fmt.load_context else {}

    floor = best_of(repeat, lambda: yaml_floor(checkout.root, source_input.files))
    parse = best_of(repeat, lambda: parse_files(fmt, source_input, context))
    rules, errors, _ = parse_files(fmt, source_input, context)
    stamp_rules(source_input, rules)
    enricher = Enricher()
    enrich = best_of(1, lambda: enricher.enrich(rules))
    with tempfile.TemporaryDirectory() as folder:
        store = open_store(Path(folder) / "bench.db")
        record = SourceRecord(name=name, format=source.format)
        save = best_of(1, lambda: store.replace_source(record, rules, errors))
        store.close()
    return {
        "files": len(source_input.files),
        "rules": len(rules),
        "floor": floor,
        "parse": parse,
        "enrich": enrich,
        "store": save,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not args.corpus.is_dir():
        print(f"corpus folder {args.corpus} not found; pass --corpus", file=sys.stderr)
        return 2
    header = f"{'source':<26}{'files':>7}{'rules':>7}{'floor s':>9}{'parse x':>9}"
    print(header + f"{'enrich x':>10}{'store x':>9}{'total x':>9}")
    ratios = []
    for name in YAML_SOURCES:
        r = bench_source(args.corpus, name, args.repeat)
        total = r["parse"] + r["enrich"] + r["store"]
        ratios.append(total / r["floor"])
        print(
            f"{name:<26}{r['files']:>7}{r['rules']:>7}{r['floor']:>9.2f}"
            f"{r['parse'] / r['floor']:>9.2f}{r['enrich'] / r['floor']:>10.2f}"
            f"{r['store'] / r['floor']:>9.2f}{total / r['floor']:>9.2f}"
        )
    print(f"median total / floor: {statistics.median(ratios):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
