"""Keep a current ATT&CK index: fetch MITRE's STIX bundle, build the index, choose which to use.

The index built from the latest bundle lives in the user data folder (or SOCFEED_ATTACK_INDEX)
and wins over the fallback index committed in the package whenever it exists.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import platformdirs

from socfeed.attack.index import AttackDataError, write_index
from socfeed.attack.knowledge import DEFAULT_INDEX_PATH, KnowledgeBase
from socfeed.attack.stix import DEFAULT_BUNDLE_URL, fetch_bundle, load_stix_bundle
from socfeed.errors import Location

log = logging.getLogger(__name__)

INDEX_ENV = "SOCFEED_ATTACK_INDEX"
# Enterprise ATT&CK has had several hundred techniques since its first releases. A bundle
# with fewer is truncated or not the Enterprise domain, so it must not replace an index.
MIN_TECHNIQUES = 100
# A URL or a local file of an Enterprise ATT&CK STIX bundle, or "none" to skip the refresh.
STIX_ENV = "SOCFEED_ATTACK_STIX"


def built_index_path() -> Path:
    """Return where the index built from a STIX bundle is written and read."""
    override = os.environ.get(INDEX_ENV)
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_data_dir("socfeed", appauthor=False)) / "attack-index.json.gz"


def current_index_path() -> Path:
    """Return the index to use: the one built from a bundle if present, else the fallback."""
    built = built_index_path()
    return built if built.is_file() else DEFAULT_INDEX_PATH


def current_knowledge_base() -> KnowledgeBase:
    """Return a knowledge base over the current index (loaded on first use)."""
    return KnowledgeBase(current_index_path())


def build_index_from_bundle(bundle: Path, output: Path | None = None) -> Path:
    """Build the compact index from a STIX bundle file and write it; return its path."""
    index = load_stix_bundle(bundle)
    if len(index.techniques) < MIN_TECHNIQUES:
        raise AttackDataError(
            f"invalid bundle: {len(index.techniques)} techniques, fewer than the "
            f"{MIN_TECHNIQUES} of any Enterprise ATT&CK release; the index was not replaced",
            Location("attack", str(bundle)),
        )
    target = output or built_index_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    write_index(index, target)
    log.info(
        "ATT&CK index built version=%s techniques=%d bundle=%s output=%s",
        index.attack_version,
        len(index.techniques),
        bundle,
        target,
    )
    return target


def refresh_index(setting: str | None = None) -> tuple[Path, str]:
    """Fetch and index the STIX bundle named by ``setting`` or SOCFEED_ATTACK_STIX.

    Returns the index path to use and a one-line note. Any failure (no network, a bad
    bundle) keeps the index already in use, and the note gives the reason, so a failure
    never stops an update.
    """
    source = setting or os.environ.get(STIX_ENV) or DEFAULT_BUNDLE_URL
    if source.lower() == "none":
        current = current_index_path()
        return current, f"ATT&CK refresh turned off; using {current}"
    try:
        if "://" in source:
            bundle = fetch_bundle(source, timeout=30.0)
        else:
            bundle = Path(source).expanduser()
        path = build_index_from_bundle(bundle)
    except AttackDataError as exc:
        log.info("ATT&CK refresh failed: %s", exc)
        fallback = current_index_path()
        return fallback, f"ATT&CK bundle not refreshed ({exc}); using {fallback}"
    return path, f"ATT&CK index rebuilt from {source}"
