"""Bring a source's files to disk: a given folder, the mirror, or a shallow clone in the cache."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from socfeed.errors import SourceError
from socfeed.sources import git
from socfeed.sources.checkout import Checkout, CheckoutMode, utc_timestamp
from socfeed.sources.gitdir import read_head

if TYPE_CHECKING:
    from socfeed.config import Settings, Source

log = logging.getLogger(__name__)


def fetch(
    source: Source, settings: Settings, path: str | os.PathLike[str] | None = None
) -> Checkout:
    """Return the source's files: ``path`` as is, else the mirror, else a cache clone.

    A clone is made shallow (depth 1, one branch) in ``<cache>/<source name>`` on first use
    and fetched and hard-reset on later calls. Raises SourceError when a folder is missing
    or git fails; the message ends with git's own error output. The caller decides whether
    to fall back to the shipped sample.
    """
    if path is not None:
        return read_folder(source, Path(path), "local")
    if settings.mirror_dir is not None:
        return read_folder(source, settings.mirror_dir / source.name, "mirror")
    return clone_or_update(source, settings)


def read_folder(source: Source, folder: Path, mode: CheckoutMode) -> Checkout:
    """Read ``folder`` as it is, with or without .git; take the commit from .git if present."""
    folder = folder.expanduser()
    if not folder.is_dir():
        if mode == "mirror":
            hint = "the mirror needs one folder per source, named after the source"
        else:
            hint = "check the --path value"
        raise SourceError(f"{mode} folder {folder} for source {source.name!r} not found; {hint}")
    commit, branch = read_head(folder)
    log.info(
        "reading folder source=%s mode=%s path=%s commit=%s",
        source.name,
        mode,
        folder,
        commit or "unknown",
    )
    return Checkout(
        root=folder.resolve(),
        commit=commit,
        ref=branch,
        retrieved_at=utc_timestamp(),
        location=str(folder.absolute()),
        is_sample=False,
        mode=mode,
    )


def clone_or_update(source: Source, settings: Settings) -> Checkout:
    """Clone the source into the cache, or fetch and hard-reset the clone already there.

    NOTE: nothing locks the clone folder, so two updates of one cache at the same time
    can fail or mix their git operations.
    """
    clone_dir = settings.cache_dir / source.name
    url = git.redact_url(source.url)
    try:
        if clone_dir.exists():
            mode: CheckoutMode = "pull"
            _check_own_clone(source, clone_dir)
            log.info("updating clone source=%s path=%s url=%s", source.name, clone_dir, url)
            git.update(clone_dir, source.url, source.ref, timeout=settings.git_timeout)
        else:
            mode = "clone"
            log.info("cloning source=%s path=%s url=%s", source.name, clone_dir, url)
            _clone_into(source, clone_dir, settings.git_timeout)
        commit = git.head_commit(clone_dir, timeout=settings.git_timeout)
    except git.GitError as exc:
        log.warning("fetch failed source=%s url=%s: %s", source.name, url, exc)
        raise SourceError(
            f"fetch of source {source.name!r} from {url} failed (check the network and the "
            f"source's url): {exc}"
        ) from exc
    ref = source.ref or git.head_branch(clone_dir, timeout=settings.git_timeout)
    log.info("fetched source=%s mode=%s commit=%s ref=%s", source.name, mode, commit, ref)
    return Checkout(
        root=clone_dir.resolve(),
        commit=commit,
        ref=ref,
        retrieved_at=utc_timestamp(),
        location=str(clone_dir),
        is_sample=False,
        mode=mode,
    )


def _check_own_clone(source: Source, clone_dir: Path) -> None:
    if not (clone_dir / ".git").is_dir():
        raise SourceError(
            f"cache folder {clone_dir} of source {source.name!r} exists but is not a Git "
            "clone; delete it so that socfeed can clone the source again"
        )


def _clone_into(source: Source, clone_dir: Path, timeout: float) -> None:
    """Clone into a temporary folder beside ``clone_dir`` and rename it when complete.

    A clone cut short (timeout, lost network) then never leaves a half-filled folder that
    a later run would take for a clone.
    """
    try:
        clone_dir.parent.mkdir(parents=True, exist_ok=True)
        temporary = Path(tempfile.mkdtemp(prefix=f".{source.name}.", dir=clone_dir.parent))
    except OSError as exc:
        raise SourceError(
            f"creating cache folder {clone_dir.parent} failed: {exc}; "
            "set SOCFEED_CACHE to a writable folder"
        ) from exc
    try:
        git.clone(source.url, source.ref, temporary, timeout=timeout)
        os.replace(temporary, clone_dir)
    except OSError as exc:
        raise SourceError(f"moving the new clone to {clone_dir} failed: {exc}") from exc
    finally:
        if temporary.exists():
            shutil.rmtree(temporary, ignore_errors=True)
