"""Find rules of other sources that detect the same behaviour, and exact duplicates."""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

MAX_SIMILAR = 5
# Pairs below either bound are not shown: shared techniques with unrelated text (cosine
# around 0.1) matched rules that detect different behaviour when checked by hand.
MIN_SCORE = 0.3
MIN_TEXT_SCORE = 0.2
_CHUNK = 512


@dataclass(frozen=True)
class RuleSketch:
    """The fields of a rule that similarity compares."""

    key: str
    source: str
    title: str
    description: str
    query: str
    techniques: tuple[str, ...]
    tables: tuple[str, ...]


@dataclass(frozen=True)
class SimilarRule:
    """A rule found similar to another, with the score and why."""

    key: str
    score: float
    reason: str


_COMMENT = re.compile(r"//[^\n]*|#[^\n]*")
_SPACE = re.compile(r"\s+")


def normalized_query(query: str) -> str:
    """Return the query without comments, case and spacing differences."""
    return _SPACE.sub(" ", _COMMENT.sub(" ", query)).strip().lower()


def exact_duplicates(sketches: Sequence[RuleSketch]) -> dict[str, list[str]]:
    """Map each rule key to the keys of other rules in its source with the same query."""
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for sketch in sketches:
        text = normalized_query(sketch.query)
        if not text:
            continue
        digest = hashlib.sha256(text.encode()).hexdigest()
        groups[(sketch.source, digest)].append(sketch.key)
    duplicates: dict[str, list[str]] = {}
    for keys in groups.values():
        if len(keys) > 1:
            for key in keys:
                duplicates[key] = [other for other in keys if other != key]
    return duplicates


def similar_rules(sketches: Sequence[RuleSketch]) -> dict[str, list[SimilarRule]]:
    """Return up to five similar rules from other sources for each rule.

    The score mixes text similarity (TF-IDF cosine over title, description and query) with
    the overlap of techniques and tables: 0.5 text + 0.3 techniques + 0.2 tables.
    """
    if len(sketches) < 2:
        return {}
    texts = [f"{s.title} {s.description} {s.query}" for s in sketches]
    vectorizer = TfidfVectorizer(
        token_pattern=r"[A-Za-z_][A-Za-z0-9_.\-]{2,}", sublinear_tf=True, max_features=200_000
    )
    matrix = vectorizer.fit_transform(texts)
    sources = np.array([s.source for s in sketches])
    result: dict[str, list[SimilarRule]] = {}
    for start in range(0, len(sketches), _CHUNK):
        block = (matrix[start : start + _CHUNK] @ matrix.T).toarray()
        for offset, row in enumerate(block):
            index = start + offset
            row[sources == sources[index]] = 0.0
            candidates = np.argsort(row)[::-1][: MAX_SIMILAR * 4]
            found = _rank(sketches, index, candidates, row)
            if found:
                result[sketches[index].key] = found
    return result


def _rank(
    sketches: Sequence[RuleSketch], index: int, candidates: np.ndarray, text_scores: np.ndarray
) -> list[SimilarRule]:
    me = sketches[index]
    ranked: list[SimilarRule] = []
    for other_index in candidates:
        text_score = float(text_scores[other_index])
        if text_score < MIN_TEXT_SCORE:
            break
        other = sketches[int(other_index)]
        techniques = _overlap(me.techniques, other.techniques)
        tables = _overlap(
            tuple(t.lower() for t in me.tables), tuple(t.lower() for t in other.tables)
        )
        score = 0.5 * text_score + 0.3 * techniques + 0.2 * tables
        if score < MIN_SCORE:
            continue
        reasons = [f"text {text_score:.2f}"]
        shared = sorted(set(me.techniques) & set(other.techniques))
        if shared:
            reasons.append("same techniques " + ", ".join(shared))
        shared_tables = sorted(set(me.tables) & set(other.tables))
        if shared_tables:
            reasons.append("same data " + ", ".join(shared_tables))
        ranked.append(SimilarRule(other.key, round(score, 3), "; ".join(reasons)))
    ranked.sort(key=lambda s: (-s.score, s.key))
    return ranked[:MAX_SIMILAR]


def _overlap(first: tuple[str, ...], second: tuple[str, ...]) -> float:
    if not first or not second:
        return 0.0
    a, b = set(first), set(second)
    return len(a & b) / len(a | b)
