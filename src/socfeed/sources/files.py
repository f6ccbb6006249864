"""List the rule and context files of a checkout, treating every file as untrusted input."""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from socfeed.errors import Location, SourceError
from socfeed.sources.globs import matches_any
from socfeed.sources.sample import SAMPLE_NOTE, is_sample_root

if TYPE_CHECKING:
    from socfeed.config import Source

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 2 * 1024 * 1024


@dataclass
class _Skipped:
    """Counts of matching files left out, for the summary log line."""

    symlinks: int = 0
    too_large: int = 0
    other: int = 0


def iter_rule_files(source: Source, root: Path, *, max_bytes: int = MAX_FILE_BYTES) -> list[str]:
    """List the rule files under ``root``: include globs minus exclude globs, sorted.

    Paths are POSIX paths relative to ``root``. Symlinks, files that resolve outside root,
    files over ``max_bytes`` and names that are not valid UTF-8 are skipped and logged.
    """
    return _list_files(source, root, source.include, source.exclude, max_bytes, "rule")


def iter_context_files(source: Source, root: Path, *, max_bytes: int = MAX_FILE_BYTES) -> list[str]:
    """List the context files under ``root`` (the source's context globs), sorted."""
    return _list_files(source, root, source.context, (), max_bytes, "context")


def read_source_file(
    source: Source, root: Path, path: str, *, max_bytes: int = MAX_FILE_BYTES
) -> bytes:
    """Read one listed file without following a symlink; raise SourceError if it changed.

    A file listed earlier may have been replaced by a symlink or grown since, so the checks
    of the listing are repeated on the open file descriptor.
    """
    location = Location(source.name, path)
    real_root = root.resolve()
    if _inside_root(real_root, path) is None:
        raise SourceError("path resolves outside the source folder; skipped", location)
    # O_NOFOLLOW makes the open fail when the last path component is a symlink.
    # NOTE: a folder on the path swapped for a symlink after the check above is followed.
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    try:
        descriptor = os.open(real_root / path, flags)
    except OSError as exc:
        raise SourceError(f"opening file failed: {exc.strerror}", location) from exc
    with os.fdopen(descriptor, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise SourceError("not a regular file; skipped", location)
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise SourceError(f"file is larger than {max_bytes} bytes; skipped", location)
    return data


def _list_files(
    source: Source,
    root: Path,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    max_bytes: int,
    purpose: str,
) -> list[str]:
    if not include:
        return []
    real_root = root.resolve()
    skip_sample_note = is_sample_root(real_root)
    skipped = _Skipped()
    found: list[str] = []
    for path in _walk(source.name, real_root, skipped):
        if not matches_any(path, include) or matches_any(path, exclude):
            continue
        if skip_sample_note and path == SAMPLE_NOTE:
            continue
        if _accept_file(source.name, real_root, path, max_bytes, skipped):
            found.append(path)
    found.sort()
    log.info(
        "listed %s files source=%s root=%s files=%d skipped_symlinks=%d skipped_large=%d "
        "skipped_other=%d",
        purpose,
        source.name,
        real_root,
        len(found),
        skipped.symlinks,
        skipped.too_large,
        skipped.other,
    )
    return found


def _walk(source: str, root: Path, skipped: _Skipped) -> list[str]:
    """Return the POSIX relative path of every entry that is not a folder, below ``root``."""

    def report(error: OSError) -> None:
        log.warning("listing folder failed source=%s path=%s: %s", source, error.filename, error)

    paths: list[str] = []
    for folder, subfolders, names in os.walk(root, followlinks=False, onerror=report):
        relative = Path(folder).relative_to(root).as_posix()
        prefix = "" if relative == "." else relative + "/"
        for name in list(subfolders):
            if name == ".git":
                subfolders.remove(name)
            elif os.path.islink(os.path.join(folder, name)):
                # os.walk does not descend into it, so rules below it are missed; log that.
                skipped.symlinks += 1
                log.warning("skipped symlinked folder source=%s path=%s", source, prefix + name)
        paths.extend(prefix + name for name in names)
    return paths


def _accept_file(source: str, root: Path, path: str, max_bytes: int, skipped: _Skipped) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        skipped.other += 1
        log.warning("skipped file name that is not UTF-8 source=%s path=%r", source, path)
        return False
    full = root / path
    try:
        info = full.lstat()
    except OSError as exc:
        skipped.other += 1
        log.warning("reading file status failed source=%s path=%s: %s", source, path, exc.strerror)
        return False
    if stat.S_ISLNK(info.st_mode):
        skipped.symlinks += 1
        log.warning("skipped symlink source=%s path=%s", source, path)
        return False
    if not stat.S_ISREG(info.st_mode):
        skipped.other += 1
        log.warning("skipped file that is not a regular file source=%s path=%s", source, path)
        return False
    if _inside_root(root, path) is None:
        skipped.other += 1
        log.warning("skipped file resolving outside the root source=%s path=%s", source, path)
        return False
    if info.st_size > max_bytes:
        skipped.too_large += 1
        log.warning(
            "skipped file larger than %d bytes source=%s path=%s bytes=%d",
            max_bytes,
            source,
            path,
            info.st_size,
        )
        return False
    return True


def _inside_root(root: Path, path: str) -> Path | None:
    """Return ``root / path`` resolved, or None when it resolves outside ``root``."""
    if path.startswith("/") or ".." in path.split("/"):
        return None
    resolved = (root / path).resolve()
    if resolved == root or not resolved.is_relative_to(root):
        return None
    return resolved
