"""Suggest ATT&CK techniques for rules that map none, learned from the rules that do.

The model is kernel ridge regression over TF-IDF features of a rule's title, description,
query and tables (see ``infer_features``), with the kernel ``k(x, y) = c + 2c²`` where ``c``
is the cosine of the two rules' feature vectors. One Cholesky solve fits every label at
once: each active ATT&CK v19 parent technique and sub-technique that a training rule or an
ATT&CK technique description carries. Suggestions are ranked at parent-technique level. A
parent is then replaced by its best sub-technique when that scores at least half as high.

Scores are probabilities calibrated on held-out sources (see ``_TEXT_CALIBRATION``). The
suggestions are stored apart from the rule's own techniques and never change them.
docs/inference.md gives the evaluation, the numbers and the settings.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg
from scipy import sparse
from sklearn.preprocessing import MultiLabelBinarizer

from socfeed.attack.knowledge import KnowledgeBase, default_knowledge_base
from socfeed.enrich.infer_features import FeatureSpace, RuleText, rule_text
from socfeed.model import Rule
from socfeed.store import Store

log = logging.getLogger(__name__)

MODEL_NAME = "tfidf-kernel-ridge-1"
_BLOCK_ROWS = 1024


@dataclass(frozen=True)
class Calibration:
    """Knots of an isotonic map from ranking score to probability, linear in between."""

    scores: tuple[float, ...]
    probabilities: tuple[float, ...]


# The probability is the share of candidates whose parent technique is among the rule's own
# parent techniques, over the top 10 candidates of every rule in the leave-one-source-out
# runs of eval/eval_inference.py, whose --fit-calibration prints new knots. Refit after
# changing InferenceSettings or the features.
# fmt: off
_TEXT_CALIBRATION = Calibration(
    scores=(0.003, 0.01, 0.0132, 0.0146, 0.016, 0.0218, 0.0233, 0.028, 0.0323, 0.0349, 0.0386,
            0.0408, 0.0524, 0.0565, 0.0628, 0.0699, 0.076, 0.0826, 0.0866, 0.1134, 0.1366,
            0.1585, 0.1961, 0.3787),
    probabilities=(0.0, 0.0106, 0.0172, 0.0212, 0.025, 0.0316, 0.0481, 0.0752, 0.0875, 0.1028,
                   0.1464, 0.1742, 0.2345, 0.2919, 0.335, 0.3956, 0.4375, 0.5054, 0.5593,
                   0.6467, 0.6983, 0.8005, 0.871, 1.0),
)
# The same for rules ranked within the tactics their source names.
_TACTIC_CALIBRATION = Calibration(
    scores=(-0.02, 0.0034, 0.0067, 0.0077, 0.0097, 0.0125, 0.0146, 0.0196, 0.0214, 0.0233,
            0.0286, 0.0311, 0.0341, 0.037, 0.0474, 0.0553, 0.0628, 0.0673, 0.0727, 0.0831,
            0.0891, 0.1026, 0.1772, 0.3787),
    probabilities=(0.0, 0.0183, 0.0236, 0.0314, 0.0402, 0.0534, 0.0769, 0.0894, 0.1063, 0.1548,
                   0.1974, 0.2079, 0.25, 0.3198, 0.4064, 0.4688, 0.5505, 0.596, 0.6364, 0.6933,
                   0.7671, 0.8249, 0.8926, 1.0),
)
# fmt: on

# ATT&CK v19 split Defense Evasion into Stealth (which kept TA0005) and Defense Impairment.
# A rule that names Defense Evasion, and so reads as Stealth, may mean either.
_TACTIC_ALSO = {"stealth": ("defense-impairment",)}


@dataclass(frozen=True)
class InferenceSettings:
    """Model settings; the defaults are the ones docs/inference.md evaluates."""

    ridge: float = 1.0  # regularization added to the kernel diagonal
    quadratic_weight: float = 2.0  # weight of c² in the kernel c + w·c²
    # Sample weight of each ATT&CK technique description used as a training document.
    knowledge_weight: float = 1.0
    # Ranking divides a label's score by its training frequency to this power, so that
    # common techniques (T1059, T1218) crowd out rarer ones less.
    prior_power: float = 0.2
    # A sub-technique replaces its parent when its score reaches this share of the parent's.
    sub_ratio: float = 0.5
    # The solve costs O(n³) time and n² float32 of memory for n training rows (576 MB at
    # 12,000). Beyond that, a fixed subset of the labelled rules is used.
    max_training_rows: int = 12_000


@dataclass(frozen=True)
class Candidate:
    """A suggested technique with its ranking score and calibrated probability."""

    technique: str
    parent: str
    rank_score: float
    score: float
    in_tactics: bool = False


def own_techniques(rule: Rule, knowledge_base: KnowledgeBase) -> list[str]:
    """Return the rule's own active v19 technique ids, revoked ids replaced, no added parents.

    A stored rule keeps the ids its source gave in ``extra["enrichment"]["resolutions"]``.
    For a rule that was not enriched, ``rule.techniques`` are resolved here.
    """
    resolutions = rule.extra.get("enrichment", {}).get("resolutions")
    if resolutions:
        ids = [entry.get("replacement") or entry.get("id") for entry in resolutions]
    else:
        ids = [knowledge_base.resolve(value).effective_id for value in rule.techniques]
    return sorted({i for i in ids if i and _is_active(knowledge_base, i)})


def _is_active(knowledge_base: KnowledgeBase, technique_id: str) -> bool:
    technique = knowledge_base.technique(technique_id)
    return technique is not None and not technique.revoked and not technique.deprecated


def _parent(technique_id: str) -> str:
    return technique_id.split(".", 1)[0]


def _with_parents(technique_ids: Iterable[str], knowledge_base: KnowledgeBase) -> list[str]:
    labels = set(technique_ids)
    labels.update(p for p in map(_parent, technique_ids) if _is_active(knowledge_base, p))
    return sorted(labels)


def knowledge_documents(knowledge_base: KnowledgeBase) -> list[tuple[RuleText, list[str]]]:
    """Return a training document per active technique: its name, summary and strategies.

    These give techniques that few or no rules map a description to learn from.
    """
    documents: list[tuple[RuleText, list[str]]] = []
    for technique in knowledge_base.index.techniques.values():
        if technique.revoked or technique.deprecated:
            continue
        title = technique.name
        parent = knowledge_base.technique(_parent(technique.id))
        if parent is not None and parent.id != technique.id:
            title = f"{parent.name}: {technique.name}"
        strategies = " ".join(strategy.name for strategy in technique.detection_strategies)
        text = RuleText(title, f"{technique.summary} {strategies}", "")
        documents.append((text, _with_parents([technique.id], knowledge_base)))
    return documents


def _kernel(left: sparse.csr_matrix, right: sparse.csr_matrix, weight: float) -> np.ndarray:
    """Return c + weight·c² for the cosines c of every row pair, a block of rows at a time."""
    out = np.empty((left.shape[0], right.shape[0]), dtype=np.float32)
    right_t = right.T.tocsc()
    for start in range(0, left.shape[0], _BLOCK_ROWS):
        cosine = (left[start : start + _BLOCK_ROWS] @ right_t).toarray()
        out[start : start + _BLOCK_ROWS] = cosine + weight * cosine * cosine
    return out


def _training_subset(
    labelled: list[tuple[Rule, list[str]]], limit: int
) -> list[tuple[Rule, list[str]]]:
    """Keep at most ``limit`` rules, chosen by a hash of their key so each run keeps the same."""
    if len(labelled) <= limit:
        return labelled
    log.warning("technique model uses %d of %d labelled rules", limit, len(labelled))

    def digest(item: tuple[Rule, list[str]]) -> str:
        rule = item[0]
        return hashlib.sha256(f"{rule.key}\0{rule.source}\0{rule.path}".encode()).hexdigest()

    return sorted(labelled, key=digest)[:limit]


@dataclass
class TechniqueModel:
    """A trained technique classifier; ``suggest`` ranks techniques for one rule."""

    features: FeatureSpace
    train_matrix: sparse.csr_matrix
    dual: np.ndarray  # training rows x labels
    labels: tuple[str, ...]
    label_frequency: np.ndarray  # training documents per label
    knowledge_base: KnowledgeBase
    settings: InferenceSettings
    training_rules: int
    _parents: np.ndarray = field(init=False, repr=False)
    _subs: dict[int, np.ndarray] = field(init=False, repr=False)
    _parent_tactics: list[frozenset[str]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        column = {label: i for i, label in enumerate(self.labels)}
        self._parents = np.array([i for i, label in enumerate(self.labels) if "." not in label])
        subs: dict[int, list[int]] = defaultdict(list)
        for i, label in enumerate(self.labels):
            if "." in label and _parent(label) in column:
                subs[column[_parent(label)]].append(i)
        self._subs = {parent: np.array(children) for parent, children in subs.items()}
        self._parent_tactics = [self._tactics_of(self.labels[i]) for i in self._parents]

    def _tactics_of(self, technique_id: str) -> frozenset[str]:
        technique = self.knowledge_base.technique(technique_id)
        return frozenset(technique.tactics) if technique is not None else frozenset()

    def raw_scores(self, texts: Sequence[RuleText]) -> np.ndarray:
        """Return the ridge score of every label for each text (rows x labels)."""
        matrix = self.features.transform(texts)
        scores = np.empty((len(texts), len(self.labels)), dtype=np.float32)
        for start in range(0, len(texts), _BLOCK_ROWS):
            block = matrix[start : start + _BLOCK_ROWS]
            kernel = _kernel(block, self.train_matrix, self.settings.quadratic_weight)
            scores[start : start + _BLOCK_ROWS] = kernel @ self.dual
        return scores

    def candidates(
        self, rules: Sequence[Rule], k: int = 3, use_tactics: bool = True
    ) -> list[list[Candidate]]:
        """Rank the k best techniques for each rule, reading no technique of the rule.

        With ``use_tactics``, techniques under the tactics the rule names come first. A
        rule that names none is ranked on its text alone.
        """
        if not rules:
            return []
        scores = self.raw_scores([rule_text(rule) for rule in rules])
        ranking = scores[:, self._parents] / self.label_frequency[self._parents] ** (
            self.settings.prior_power
        )
        ranked: list[list[Candidate]] = []
        for row, rank_row, rule in zip(scores, ranking, rules, strict=True):
            tactics = self.named_tactics(rule) if use_tactics else frozenset()
            ranked.append(self._rank(row, rank_row, tactics, k))
        return ranked

    def suggest(self, rule: Rule, k: int = 3) -> list[tuple[str, float]]:
        """Return up to k (technique id, probability) pairs for a rule, best first."""
        return self.suggest_many([rule], k)[0]

    def suggest_many(self, rules: Sequence[Rule], k: int = 3) -> list[list[tuple[str, float]]]:
        """Return the suggestions of ``suggest`` for many rules at once (much faster)."""
        ranked = self.candidates(rules, k)
        return [[(c.technique, c.score) for c in row] for row in ranked]

    def named_tactics(self, rule: Rule) -> frozenset[str]:
        """Return the shortnames of the tactics the rule names, Stealth adding its sibling."""
        shortnames: set[str] = set()
        for name in rule.tactics:
            tactic = self.knowledge_base.tactic(name)
            if tactic is not None:
                shortnames.add(tactic.shortname)
                shortnames.update(_TACTIC_ALSO.get(tactic.shortname, ()))
        return frozenset(shortnames)

    def _rank(
        self, row: np.ndarray, rank_row: np.ndarray, tactics: frozenset[str], k: int
    ) -> list[Candidate]:
        order = np.argsort(-rank_row, kind="stable")
        if tactics:
            inside = [i for i in order if self._parent_tactics[i] & tactics]
            outside = [i for i in order if not self._parent_tactics[i] & tactics]
            order = np.array(inside + outside, dtype=int)
        calibration = _TACTIC_CALIBRATION if tactics else _TEXT_CALIBRATION
        chosen: list[Candidate] = []
        for position in order[:k]:
            column = int(self._parents[position])
            probability = calibrate(float(rank_row[position]), calibration)
            technique, share = self._best_sub(row, column)
            chosen.append(
                Candidate(
                    technique=technique,
                    parent=self.labels[column],
                    rank_score=float(rank_row[position]),
                    score=round(probability * share, 4),
                    in_tactics=bool(self._parent_tactics[position] & tactics),
                )
            )
        return chosen

    def _best_sub(self, row: np.ndarray, column: int) -> tuple[str, float]:
        """Return the sub-technique that replaces a parent, or the parent, and its share."""
        children = self._subs.get(column)
        parent_score = float(row[column])
        if children is None or parent_score <= 0:
            return self.labels[column], 1.0
        best = int(children[np.argmax(row[children])])
        # The ratio estimates P(sub-technique | parent), since both are least-squares
        # estimates of label probabilities. It is clipped because neither is bounded.
        share = min(1.0, max(0.0, float(row[best]) / parent_score))
        if share < self.settings.sub_ratio:
            return self.labels[column], 1.0
        return self.labels[best], share


def calibrate(rank_score: float, calibration: Calibration) -> float:
    """Map a ranking score to a probability; flat beyond the first and last knot."""
    probability = np.interp(rank_score, calibration.scores, calibration.probabilities)
    return float(np.clip(probability, 0.0, 1.0))


def train(
    rules: Iterable[Rule],
    knowledge_base: KnowledgeBase | None = None,
    settings: InferenceSettings | None = None,
) -> TechniqueModel:
    """Train on the rules with techniques of their own, using the others for vocabulary only.

    Raises ValueError when no rule has an active ATT&CK v19 technique of its own.
    """
    started = time.perf_counter()
    kb = knowledge_base or default_knowledge_base()
    settings = settings or InferenceSettings()
    labelled: list[tuple[Rule, list[str]]] = []
    unlabelled: list[Rule] = []
    for rule in rules:
        own = own_techniques(rule, kb)
        if own:
            labelled.append((rule, _with_parents(own, kb)))
        elif not rule.techniques:
            unlabelled.append(rule)
    if not labelled:
        raise ValueError("no rule has an active ATT&CK technique of its own to train on")

    documents = knowledge_documents(kb) if settings.knowledge_weight > 0 else []
    labelled = _training_subset(labelled, max(1, settings.max_training_rows - len(documents)))
    texts = [rule_text(rule) for rule, _ in labelled] + [text for text, _ in documents]
    targets = [labels for _, labels in labelled] + [labels for _, labels in documents]
    weights = np.array([1.0] * len(labelled) + [settings.knowledge_weight] * len(documents))

    features = FeatureSpace()
    matrix = features.fit_transform(texts, [rule_text(rule) for rule in unlabelled])
    binarizer = MultiLabelBinarizer()
    target_matrix = binarizer.fit_transform(targets).astype(np.float32)
    dual = _solve(matrix, target_matrix, weights, settings)
    model = TechniqueModel(
        features=features,
        train_matrix=matrix,
        dual=dual,
        labels=tuple(str(label) for label in binarizer.classes_),
        label_frequency=np.maximum(target_matrix.sum(axis=0), 1.0),
        knowledge_base=kb,
        settings=settings,
        training_rules=len(labelled),
    )
    log.info(
        "technique model trained rules=%d documents=%d labels=%d seconds=%.1f",
        len(labelled),
        len(documents),
        len(model.labels),
        time.perf_counter() - started,
    )
    return model


def _solve(
    matrix: sparse.csr_matrix,
    targets: np.ndarray,
    weights: np.ndarray,
    settings: InferenceSettings,
) -> np.ndarray:
    """Solve (K + ridge·W⁻¹) A = Y for the dual coefficients A of every label at once."""
    kernel = _kernel(matrix, matrix, settings.quadratic_weight)
    kernel[np.diag_indices_from(kernel)] += (settings.ridge / weights).astype(np.float32)
    factor = scipy.linalg.cho_factor(kernel, overwrite_a=True, check_finite=False)
    return scipy.linalg.cho_solve(factor, targets, check_finite=False)


def refresh_suggestions(
    store: Store, k: int = 3, knowledge_base: KnowledgeBase | None = None
) -> dict[str, int]:
    """Train on the stored rules and store suggestions for every rule without techniques.

    Replaces all earlier suggestions. Returns counts: training_rules,
    rules_without_techniques, rules_suggested and suggestions (rows written).
    """
    kb = knowledge_base or default_knowledge_base()
    rules = list(store.iter_rules())
    targets = [rule for rule in rules if not rule.techniques]
    counts = {
        "training_rules": 0,
        "rules_without_techniques": len(targets),
        "rules_suggested": 0,
        "suggestions": 0,
    }
    try:
        model = train(rules, kb) if targets else None
    except ValueError as exc:
        log.warning("technique suggestions cleared: %s", exc)
        model = None
    if model is None:
        store.replace_suggestions([])
        return counts

    rows: list[tuple[str, str, float, str]] = []
    for rule, suggestions in zip(targets, model.suggest_many(targets, k), strict=True):
        rows.extend((rule.key, technique, score, MODEL_NAME) for technique, score in suggestions)
    counts["training_rules"] = model.training_rules
    counts["rules_suggested"] = len({key for key, *_ in rows})
    counts["suggestions"] = store.replace_suggestions(rows)
    log.info("technique suggestions stored %s", " ".join(f"{k}={v}" for k, v in counts.items()))
    return counts


__all__ = [
    "MODEL_NAME",
    "Calibration",
    "Candidate",
    "InferenceSettings",
    "TechniqueModel",
    "calibrate",
    "knowledge_documents",
    "own_techniques",
    "refresh_suggestions",
    "train",
]
