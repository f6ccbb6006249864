"""Leave-one-source-out evaluation of technique inference (socfeed.enrich.infer).

For each held-out group, the model trains on the labelled rules of every other source (the
held-out rules' text shapes the vocabulary, as unlabelled rules do in the store) and ranks
techniques for the held-out rules that have techniques of their own. It prints top-1/3/5 at
parent-technique level and strictly, plus training and prediction times.

    .venv/bin/python eval/eval_inference.py --corpus /work/shared/corpus
    .venv/bin/python eval/eval_inference.py --db /tmp/socfeed.db

docs/inference.md defines the metrics and records the results.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import logging
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
from sklearn.isotonic import IsotonicRegression

from socfeed.attack.knowledge import KnowledgeBase, default_knowledge_base
from socfeed.config import load_settings
from socfeed.enrich import infer
from socfeed.enrich.infer import (
    Calibration,
    Candidate,
    InferenceSettings,
    calibrate,
    own_techniques,
    train,
)
from socfeed.formats import get_format
from socfeed.ingest import parse_files, stamp_rules
from socfeed.model import Rule
from socfeed.sources import fetch
from socfeed.update import build_source_input

log = logging.getLogger("eval_inference")

# Held-out group -> sources. The Sentinel group is Azure-Sentinel's analytic rules and
# hunting queries. The other KQL sources (Markdown pages and .kql files) form a group too.
HOLDOUTS: dict[str, tuple[str, ...]] = {
    "sigma": ("sigma",),
    "elastic": ("elastic-detection-rules",),
    "splunk": ("splunk-security-content",),
    "sentinel": ("azure-sentinel",),
    "other-kql": ("m365-hunting-queries", "sentinel-queries-reprise99", "falconfriday"),
}
CUTOFFS = (1, 3, 5)
CALIBRATION_DEPTH = 10  # candidates per rule used to measure and fit calibration


@dataclass
class FoldResult:
    """Hits of one held-out group, counted over its rules with techniques of their own."""

    group: str
    rules: int = 0
    parent_hits: dict[int, int] = field(default_factory=lambda: dict.fromkeys(CUTOFFS, 0))
    strict_hits: dict[int, int] = field(default_factory=lambda: dict.fromkeys(CUTOFFS, 0))
    train_seconds: float = 0.0
    predict_seconds: float = 0.0
    # Rules ranked within the tactics they name. It stays 0 when ranking reads text only.
    with_tactics: int = 0
    # (ranking score, parent hit) of the top CALIBRATION_DEPTH candidates of every rule,
    # kept apart for rules ranked within their tactics since those use their own knots.
    pairs: list[tuple[float, int]] = field(default_factory=list)
    tactic_pairs: list[tuple[float, int]] = field(default_factory=list)

    def rate(self, hits: dict[int, int], k: int) -> float:
        return hits[k] / self.rules if self.rules else float("nan")


def load_corpus(corpus: Path) -> list[Rule]:
    """Parse every configured source that has a folder in ``corpus``, without enrichment."""
    settings = dataclasses.replace(load_settings(environ={}), mirror_dir=corpus)
    rules: list[Rule] = []
    for source in settings.sources:
        if not (corpus / source.name).is_dir():
            continue
        checkout = fetch(source, settings)
        source_input = build_source_input(settings, source, checkout)
        fmt = get_format(source.format)
        context = fmt.load_context(source_input.root) if fmt.load_context else {}
        parsed, _errors, _files = parse_files(fmt, source_input, context)
        stamp_rules(source_input, parsed)
        for rule in parsed:
            rule.key = f"{rule.source}:{rule.path}:{rule.query_index}"
        rules.extend(parsed)
        log.info("parsed source=%s rules=%d", source.name, len(parsed))
    return rules


def load_store(db: str) -> list[Rule]:
    """Read every rule of a store."""
    from socfeed.store import open_store

    store = open_store(db)
    try:
        return list(store.iter_rules())
    finally:
        store.close()


def hidden(rule: Rule) -> Rule:
    """Return a copy of a held-out rule with its ATT&CK mapping removed."""
    return dataclasses.replace(rule, techniques=[], tactics=[], extra={})


def evaluate_group(
    group: str,
    rules: Sequence[Rule],
    kb: KnowledgeBase,
    settings: InferenceSettings,
    use_tactics: bool,
) -> FoldResult:
    """Train without one group's labels and score the ranking of its labelled rules."""
    result = FoldResult(group)
    members = set(HOLDOUTS[group])
    held_out = [rule for rule in rules if rule.source in members]
    tests = [(rule, own_techniques(rule, kb)) for rule in held_out]
    tests = [(rule, own) for rule, own in tests if own]
    if not tests:
        return result
    training = [rule for rule in rules if rule.source not in members]
    training += [hidden(rule) for rule in held_out]

    started = time.perf_counter()
    model = train(training, kb, settings)
    result.train_seconds = time.perf_counter() - started
    started = time.perf_counter()
    queries = [rule if use_tactics else hidden(rule) for rule, _ in tests]
    ranked = model.candidates(queries, k=CALIBRATION_DEPTH, use_tactics=use_tactics)
    result.predict_seconds = time.perf_counter() - started

    for query, (_, own), candidates in zip(queries, tests, ranked, strict=True):
        named = use_tactics and bool(model.named_tactics(query))
        result.with_tactics += named
        score_rule(result, own, candidates, result.tactic_pairs if named else result.pairs)
    return result


def score_rule(
    result: FoldResult,
    own: list[str],
    candidates: list[Candidate],
    pairs: list[tuple[float, int]],
) -> None:
    """Add one rule's hits: strict on exact ids, parent-level on parent ids."""
    result.rules += 1
    own_parents = {technique.split(".", 1)[0] for technique in own}
    for k in CUTOFFS:
        top = candidates[:k]
        result.strict_hits[k] += any(c.technique in own for c in top)
        result.parent_hits[k] += any(c.parent in own_parents for c in top)
    pairs.extend((c.rank_score, int(c.parent in own_parents)) for c in candidates)


def print_table(title: str, results: Sequence[FoldResult]) -> None:
    """Print one Markdown table row per held-out group."""
    print(f"\n{title}\n")
    print(
        "| held out | rules | with tactics | top-1 | top-3 | top-5 | strict top-1 "
        "| strict top-3 | strict top-5 | train s | predict s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        parent = " | ".join(f"{r.rate(r.parent_hits, k):.3f}" for k in CUTOFFS)
        strict = " | ".join(f"{r.rate(r.strict_hits, k):.3f}" for k in CUTOFFS)
        print(
            f"| {r.group} | {r.rules} | {r.with_tactics} | {parent} | {strict} "
            f"| {r.train_seconds:.1f} | {r.predict_seconds:.2f} |"
        )


def print_calibration(
    pairs: Sequence[tuple[float, int]], calibration: Calibration, fit: bool
) -> None:
    """Print how well a knot table matches the hit rates, and fitted knots when asked."""
    if not pairs:
        return
    scores = np.array([score for score, _ in pairs])
    hits = np.array([hit for _, hit in pairs], dtype=float)
    stored = np.array([calibrate(score, calibration) for score in scores])
    print(f"expected calibration error of the stored knots: {_ece(stored, hits):.3f}")
    for low, high, count, predicted, observed in _reliability(stored, hits):
        print(
            f"  score {low:.1f}-{high:.1f}: {count:6d} candidates, {predicted:.3f} predicted, "
            f"{observed:.3f} hit"
        )
    if fit:
        isotonic = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
        isotonic.fit(scores, hits)
        fitted = _thin_knots(isotonic.X_thresholds_, isotonic.y_thresholds_)
        refit = np.array([calibrate(score, fitted) for score in scores])
        print(f"expected calibration error of the fitted knots: {_ece(refit, hits):.3f}")
        print(f"fitted: {fitted}")


def _reliability(
    probabilities: np.ndarray, hits: np.ndarray, bins: int = 10
) -> list[tuple[float, float, int, float, float]]:
    rows = []
    edges = np.linspace(0.0, 1.0, bins + 1)
    for low, high in itertools.pairwise(edges):
        inside = (probabilities >= low) & ((probabilities < high) | (high == 1.0))
        if inside.any():
            rows.append(
                (low, high, int(inside.sum()), probabilities[inside].mean(), hits[inside].mean())
            )
    return rows


def _ece(probabilities: np.ndarray, hits: np.ndarray) -> float:
    """Return the expected calibration error over ten equal-width probability bins."""
    rows = _reliability(probabilities, hits)
    return sum(
        count * abs(predicted - observed) for _, _, count, predicted, observed in rows
    ) / len(hits)


def _thin_knots(xs: np.ndarray, ys: np.ndarray, limit: int = 24) -> Calibration:
    """Keep at most ``limit`` knots of an isotonic fit, always its first and last."""
    picks = np.unique(np.linspace(0, len(xs) - 1, min(limit, len(xs))).round().astype(int))
    return Calibration(
        scores=tuple(round(float(xs[i]), 4) for i in picks),
        probabilities=tuple(round(float(ys[i]), 4) for i in picks),
    )


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--corpus", type=Path, help="folder with one folder per source")
    where.add_argument("--db", help="store (SQLite file or URL) filled by socfeed update")
    parser.add_argument(
        "--holdout",
        action="append",
        choices=list(HOLDOUTS),
        help="evaluate only this held-out group (repeatable; default: all)",
    )
    parser.add_argument(
        "--fit-calibration", action="store_true", help="print calibration knots fitted now"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the evaluation and print its tables."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    kb = default_knowledge_base()
    settings = InferenceSettings()
    started = time.perf_counter()
    rules = load_corpus(args.corpus) if args.corpus else load_store(args.db)
    print(f"loaded {len(rules)} rules in {time.perf_counter() - started:.0f} s")
    print(f"date {date.today()}, {platform.machine()}, {os.cpu_count()} CPUs, {settings}")
    groups = args.holdout or list(HOLDOUTS)

    text_results = [evaluate_group(g, rules, kb, settings, use_tactics=False) for g in groups]
    print_table("Text only (title, description, query, tables)", text_results)
    text_pairs = [pair for result in text_results for pair in result.pairs]
    print_calibration(text_pairs, infer._TEXT_CALIBRATION, args.fit_calibration)
    if args.corpus:
        # Parsed rules carry only the tactics their source states. Rules read from a store
        # also carry tactics derived from their techniques, which would leak the labels.
        tactic_results = [evaluate_group(g, rules, kb, settings, use_tactics=True) for g in groups]
        print_table("Ranked within the tactics the source names", tactic_results)
        tactic_pairs = [pair for result in tactic_results for pair in result.tactic_pairs]
        print("Calibration over the rules that name tactics:")
        print_calibration(tactic_pairs, infer._TACTIC_CALIBRATION, args.fit_calibration)
    print_production_timing(rules, kb, settings)
    return 0


def print_production_timing(
    rules: Sequence[Rule], kb: KnowledgeBase, settings: InferenceSettings
) -> None:
    """Time one training on all rules and suggestions for every rule without techniques."""
    started = time.perf_counter()
    model = train(rules, kb, settings)
    trained = time.perf_counter() - started
    targets = [rule for rule in rules if not rule.techniques]
    started = time.perf_counter()
    model.suggest_many(targets, k=3)
    print(
        f"\nall sources: trained on {model.training_rules} rules in {trained:.1f} s, "
        f"suggested for {len(targets)} rules without techniques in "
        f"{time.perf_counter() - started:.1f} s"
    )


if __name__ == "__main__":
    sys.exit(main())
