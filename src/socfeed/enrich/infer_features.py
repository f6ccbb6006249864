"""Text features for technique inference: rule text cleanup and weighted TF-IDF views."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

from socfeed.model import Rule

# Technique ids in any spelling rules use (T1059, T1059.001, attack.t1059, t1059/001). They
# are removed so that the model learns from what a rule looks at, not from a mapping that
# unmapped rules lack.
TECHNIQUE_ID = re.compile(r"\b(?:attack\.)?t1\d{3}(?:[./]\d{3})?\b", re.IGNORECASE)
_ATTACK_URL = re.compile(r"https?://attack\.mitre\.org\S*", re.IGNORECASE)
_URL = re.compile(r"https?://(\S+)")
# Phrases one source repeats in most of its rules ("The following analytic detects", "This
# rule identifies"). They carry nothing about the behaviour but mark the source, which hurts
# a model that must work on sources it was not trained on.
_BOILERPLATE = re.compile(
    "|".join(
        (
            r"the following (?:hunting )?(?:analytic|search|detection)s? "
            r"(?:detects|identifies|looks for|leverages|uses|monitors|searches)",
            r"this (?:activity|behavior) is significant because",
            r"if confirmed malicious,? (?:this|the)[^.]*",
            r"this (?:detection|analytic|rule|query|hunt) "
            r"(?:is|detects|identifies|looks for|monitors)",
            r"\bidentifies\b",
            r"\bdetects\b",
            r"\(query \d+ of \d+\)",
        )
    ),
    re.IGNORECASE,
)
# Splunk's standard macros and output columns, which nearly every SPL search carries.
_SPL_BOILERPLATE = re.compile(
    r"`(?:security_content_[a-z_]+|drop_dm_object_name|[a-z0-9_]+_filter)(?:\([^`]*\))?`"
    r"|\b(?:firstTime|lastTime|summariesonly)\b"
)
_RAW_TOKEN = re.compile(r"[A-Za-z0-9_.\-\\/$]+")
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*|\d+")
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_COMPOUND = re.compile(r"[a-z0-9_.\-]+")
_NON_WORD = re.compile(r"\W+")
_MAX_DOCUMENT_SHARE = 0.3

# Relative weight of each view in the combined vector. Title words appear in the "prose"
# view too, so the title view adds weight to them. The weights were chosen on the
# leave-one-source-out folds of docs/inference.md, where halving or raising one weight by
# half moved top-5 by under one point.
VIEW_WEIGHTS = {"prose": 1.0, "title": 0.5, "query": 1.0, "tables": 0.5, "chars": 1.0}


@dataclass(frozen=True)
class RuleText:
    """The text fields of a rule that the technique model reads."""

    title: str
    description: str
    query: str
    tables: tuple[str, ...] = ()


def rule_text(rule: Rule) -> RuleText:
    """Collect the fields of a rule that the model reads: title, description, query, tables."""
    return RuleText(rule.title, rule.description, rule.query, tuple(rule.tables()))


def split_words(text: str) -> str:
    """Split identifiers into lower-case words, keeping compound names as one token too.

    ``DeviceProcessEvents`` gives "device process events deviceprocessevents" and
    ``process.parent.name`` gives "process parent name process_parent_name", so KQL, SPL,
    EQL and Sigma field names share words with each other and with prose.
    """
    return " ".join(_split_token(raw) for raw in _RAW_TOKEN.findall(text))


# Field, table and process names repeat across thousands of rules, so caching the split of
# each raw token makes this step several times faster.
@functools.lru_cache(maxsize=200_000)
def _split_token(raw: str) -> str:
    parts = _WORD.findall(raw)
    words = [w.lower() for part in parts for w in _CAMEL_BOUNDARY.split(part) if w]
    if len(words) > 1:
        compound = raw.strip(".-_\\/$").lower()
        if 2 < len(compound) < 40 and _COMPOUND.fullmatch(compound):
            words.append(compound.replace(".", "_").replace("-", "_"))
    return " ".join(words)


def clean_prose(text: str) -> str:
    """Remove technique ids, ATT&CK links, source boilerplate and URL schemes from prose."""
    text = _ATTACK_URL.sub(" ", text)
    text = TECHNIQUE_ID.sub(" ", text)
    text = _URL.sub(lambda match: " ".join(_WORD.findall(match.group(1))), text)
    return _BOILERPLATE.sub(" ", text)


def clean_query(text: str) -> str:
    """Remove technique ids, ATT&CK links and Splunk's standard macros from a query."""
    text = _ATTACK_URL.sub(" ", text)
    text = TECHNIQUE_ID.sub(" ", text)
    return _SPL_BOILERPLATE.sub(" ", text)


def _table_words(tables: Sequence[str]) -> str:
    """Return each table or log source name as its words plus the whole name as one token."""
    words = [split_words(name) + " " + _NON_WORD.sub("_", name.lower()) for name in tables]
    return " ".join(words)


def _view_texts(texts: Sequence[RuleText]) -> dict[str, list[str]]:
    """Return the text of every view for each rule, ready for a whitespace tokenizer."""
    return {
        "prose": [split_words(clean_prose(f"{t.title} . {t.description}")) for t in texts],
        "title": [split_words(clean_prose(t.title)) for t in texts],
        "query": [split_words(clean_query(t.query)) for t in texts],
        "tables": [_table_words(t.tables) for t in texts],
        "chars": [f"{t.title} {clean_prose(t.description)}" for t in texts],
    }


def _new_vectorizer(view: str, documents: int) -> TfidfVectorizer:
    # Terms in over 30% of the rules carry little weight but dominate the cost of the kernel
    # (a term in n rules adds n² products). Dropping them halved that time and moved top-5
    # on the three large held-out sources by at most 0.003. Small corpora keep every term.
    max_df = _MAX_DOCUMENT_SHARE if documents >= 50 else 1.0
    if view == "chars":
        # Character n-grams match spelling variants and word parts (mimikatz, mimidrv).
        return TfidfVectorizer(
            analyzer="char_wb",
            ngram_range=(3, 5),
            sublinear_tf=True,
            min_df=2,
            max_df=max_df,
            max_features=150_000,
            dtype=np.float32,
        )
    return TfidfVectorizer(
        ngram_range=(1, 1) if view == "tables" else (1, 2),
        token_pattern=r"\S+",
        lowercase=False,
        sublinear_tf=True,
        min_df=2,
        max_df=max_df,
        max_features=200_000,
        dtype=np.float32,
    )


class FeatureSpace:
    """TF-IDF views of rule text, combined into one unit-length sparse vector per rule."""

    def __init__(self, weights: dict[str, float] | None = None) -> None:
        self.weights = dict(weights or VIEW_WEIGHTS)
        self._vectorizers: dict[str, TfidfVectorizer] = {}

    def fit_transform(
        self, texts: Sequence[RuleText], vocabulary_only: Sequence[RuleText] = ()
    ) -> sparse.csr_matrix:
        """Learn every view's vocabulary and IDF from both lists; return the rows of ``texts``.

        ``vocabulary_only`` (unlabelled rules) shapes which terms exist and how rare they
        are, but gets no rows in the result.
        """
        views = _view_texts([*texts, *vocabulary_only])
        self._vectorizers = {}
        blocks: dict[str, sparse.csr_matrix] = {}
        for view in self.weights:
            vectorizer = _new_vectorizer(view, len(views[view]))
            try:
                blocks[view] = vectorizer.fit_transform(views[view])[: len(texts)]
            except ValueError:
                # When every text of the view is empty or below min_df, the view is left out.
                continue
            self._vectorizers[view] = vectorizer
        return self._combine(blocks)

    def transform(self, texts: Sequence[RuleText]) -> sparse.csr_matrix:
        """Return one row per text in the space learned by ``fit_transform``."""
        views = _view_texts(texts)
        blocks = {view: v.transform(views[view]) for view, v in self._vectorizers.items()}
        return self._combine(blocks)

    def _combine(self, blocks: dict[str, sparse.csr_matrix]) -> sparse.csr_matrix:
        """Normalize each view to unit length, scale it by its weight, then the whole row."""
        if not blocks:
            raise ValueError("the feature space is not fitted or has no usable view")
        total = sum(self.weights[view] for view in blocks)
        scaled = [
            normalize(block) * float(np.sqrt(self.weights[view] / total))
            for view, block in blocks.items()
        ]
        return normalize(sparse.hstack(scaled, format="csr", dtype=np.float32))
