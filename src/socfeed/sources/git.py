"""Run the git command line: shallow clone, fetch and hard reset of a source's cache clone.

socfeed calls the ``git`` binary through subprocess with argument lists and no shell, so
clones use the transports, proxies and credential helpers the user's Git already has.
GitPython would only wrap the same binary.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
from pathlib import Path

log = logging.getLogger(__name__)

# Variables that would point git at another repository than the one in ``cwd``.
_REPOSITORY_VARIABLES = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
)
_CREDENTIALS_IN_URL = re.compile(r"(?<=://)[^/@\s]+@")
_STDERR_TAIL_LINES = 4
_STDERR_TAIL_CHARS = 600


class GitError(Exception):
    """A git command failed, timed out or could not start; the message ends with git's output."""


def git_environment() -> dict[str, str]:
    """Return the environment for git: never prompt, English messages, no LFS downloads."""
    env = {key: value for key, value in os.environ.items() if key not in _REPOSITORY_VARIABLES}
    env["GIT_TERMINAL_PROMPT"] = "0"  # fail instead of asking for a user name on stdin
    env["GCM_INTERACTIVE"] = "never"  # same for Git Credential Manager
    env["GIT_LFS_SKIP_SMUDGE"] = "1"  # rule files are plain text; skip large LFS objects
    env["LC_ALL"] = "C"  # error tails shown to users are then in English
    return env


def redact_url(text: str) -> str:
    """Hide user names and tokens written into URLs (https://user:token@host/...)."""
    return _CREDENTIALS_IN_URL.sub("***@", text)


def run_git(args: list[str], *, cwd: Path | None = None, timeout: float) -> str:
    """Run ``git *args`` and return its standard output; raise GitError on failure.

    On timeout the whole process group is killed, because git starts helpers
    (git-remote-https, index-pack) that would otherwise keep running.
    """
    command = ["git", *args]
    shown = redact_url(" ".join(command))
    log.debug("running %s cwd=%s", shown, cwd)
    try:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=git_environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            start_new_session=True,
        )
    except FileNotFoundError:
        raise GitError("git is not installed or not on PATH; install Git") from None
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        process.communicate()
        raise GitError(f"{shown} timed out after {timeout:g} s") from None
    if process.returncode != 0:
        raise GitError(f"{shown} failed with exit code {process.returncode}: {_tail(stderr)}")
    return stdout


def clone(url: str, ref: str | None, destination: Path, *, timeout: float) -> None:
    """Clone the tip of ``ref`` (or the remote's default branch) with depth 1."""
    args = ["clone", "--depth", "1", "--single-branch", "--no-tags", "--quiet"]
    if ref:
        args += ["--branch", ref]
    # "--" keeps a URL or folder that starts with "-" from being read as an option.
    # NOTE: depth 1 still downloads the whole tree of the tip, which is large for
    # Azure-Sentinel; a sparse checkout limited to the include globs would be smaller.
    run_git([*args, "--", url, str(destination)], timeout=timeout)


def update(clone_dir: Path, url: str, ref: str | None, *, timeout: float) -> None:
    """Fetch the tip of ``ref`` (or the remote's HEAD) and make the work tree match it."""
    current_url = run_git(["remote", "get-url", "origin"], cwd=clone_dir, timeout=timeout)
    if current_url.strip() != url:
        log.info("changing clone URL path=%s url=%s", clone_dir, redact_url(url))
        run_git(["remote", "set-url", "origin", "--", url], cwd=clone_dir, timeout=timeout)
    fetch_args = ["fetch", "--depth", "1", "--no-tags", "--quiet", "origin"]
    run_git([*fetch_args, ref or "HEAD"], cwd=clone_dir, timeout=timeout)
    run_git(["reset", "--hard", "--quiet", "FETCH_HEAD"], cwd=clone_dir, timeout=timeout)
    # Two -f flags also remove nested Git folders left by an older checkout.
    run_git(["clean", "-f", "-f", "-d", "-x", "--quiet"], cwd=clone_dir, timeout=timeout)


def head_commit(clone_dir: Path, *, timeout: float) -> str:
    """Return the commit id checked out in ``clone_dir``."""
    return run_git(["rev-parse", "HEAD"], cwd=clone_dir, timeout=timeout).strip()


def head_branch(clone_dir: Path, *, timeout: float) -> str | None:
    """Return the checked-out branch name, or None when HEAD is detached."""
    try:
        output = run_git(
            ["symbolic-ref", "--quiet", "--short", "HEAD"], cwd=clone_dir, timeout=timeout
        )
    except GitError:
        return None
    return output.strip() or None


def _tail(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    text = " / ".join(lines[-_STDERR_TAIL_LINES:]) or "no error output"
    if len(text) > _STDERR_TAIL_CHARS:
        text = "..." + text[-_STDERR_TAIL_CHARS:]
    return redact_url(text)


def _kill_group(process: subprocess.Popen[str]) -> None:
    if hasattr(os, "killpg"):
        try:
            os.killpg(process.pid, signal.SIGKILL)
            return
        except ProcessLookupError:
            return
    process.kill()
