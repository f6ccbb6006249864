"""Read the checked-out commit of a local folder from its .git files, without running git.

Folders given with --path or found in the mirror are not socfeed's own clones. Running git
in them would apply their .git/config, and git refuses to work in a folder owned by another
user ("dubious ownership"), which is common for read-only mirrors. Reading HEAD and the refs
as files avoids both.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

log = logging.getLogger(__name__)

# SHA-1 and SHA-256 object ids.
_OBJECT_ID = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
_MAX_GIT_FILE_BYTES = 1024 * 1024


def read_head(work_tree: Path) -> tuple[str | None, str | None]:
    """Return (commit, branch) checked out in ``work_tree``, or None for what is unknown.

    Only ``work_tree/.git`` is read, never a parent folder's repository: the paths of the
    listed files are relative to ``work_tree``, so a parent's commit would give wrong links.
    The commit is None without a .git, on an unborn branch, or for a ref format this reader
    does not know (reftable). The branch is None when HEAD is detached.
    """
    git_dir = _git_dir(work_tree)
    if git_dir is None:
        return None, None
    head = _read_small(git_dir / "HEAD")
    if head is None:
        return None, None
    if _OBJECT_ID.match(head):
        return head, None
    if not head.startswith("ref: "):
        log.warning("unrecognized .git/HEAD path=%s", git_dir)
        return None, None
    ref = head.removeprefix("ref: ").strip()
    branch = ref.removeprefix("refs/heads/") if ref.startswith("refs/heads/") else None
    return _resolve_ref(_common_dir(git_dir), ref), branch


def _git_dir(work_tree: Path) -> Path | None:
    dot_git = work_tree / ".git"
    if dot_git.is_dir():
        return dot_git
    if not dot_git.is_file():
        return None
    # A linked worktree or submodule: .git is a file "gitdir: <path>".
    content = _read_small(dot_git)
    if content is None or not content.startswith("gitdir:"):
        return None
    target = Path(content.removeprefix("gitdir:").strip())
    target = target if target.is_absolute() else work_tree / target
    return target if target.is_dir() else None


def _common_dir(git_dir: Path) -> Path:
    """Return the folder with the shared refs; a linked worktree names it in ``commondir``."""
    pointer = _read_small(git_dir / "commondir")
    if pointer is None:
        return git_dir
    common = Path(pointer)
    common = common if common.is_absolute() else git_dir / common
    return common if common.is_dir() else git_dir


def _resolve_ref(common_dir: Path, ref: str) -> str | None:
    if not ref.startswith("refs/") or ".." in ref.split("/"):
        return None
    loose = _read_small(common_dir / ref)
    if loose is not None and _OBJECT_ID.match(loose):
        return loose
    packed = _read_small(common_dir / "packed-refs")
    for line in (packed or "").splitlines():
        parts = line.split(" ", 1)
        if len(parts) == 2 and parts[1] == ref and _OBJECT_ID.match(parts[0]):
            return parts[0]
    return None


def _read_small(path: Path) -> str | None:
    try:
        if not path.is_file() or path.stat().st_size > _MAX_GIT_FILE_BYTES:
            return None
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError as exc:
        log.warning("reading git file failed path=%s: %s", path, exc.strerror)
        return None
