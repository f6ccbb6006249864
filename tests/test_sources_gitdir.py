"""Tests for socfeed.sources.gitdir: the commit of a folder read from its .git files."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from socfeed.sources.gitdir import read_head


@pytest.fixture(autouse=True)
def isolated_git(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the machine's Git configuration out of the tests and give commits an author."""
    home = tmp_path_factory.mktemp("git-home")
    (home / ".gitconfig").write_text("", encoding="utf-8")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{role}_NAME", "Test")
        monkeypatch.setenv(f"GIT_{role}_EMAIL", "test@example.org")


def git(cwd: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True, timeout=60
    )
    return result.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    folder = tmp_path / "repo"
    folder.mkdir()
    git(folder, "init", "--quiet", "-b", "main")
    (folder / "a.yml").write_text("title: A\n", encoding="utf-8")
    git(folder, "add", "a.yml")
    git(folder, "commit", "--quiet", "-m", "first")
    return folder


def test_head_on_branch(repo: Path) -> None:
    assert read_head(repo) == (git(repo, "rev-parse", "HEAD"), "main")


def test_head_from_packed_refs(repo: Path) -> None:
    git(repo, "pack-refs", "--all")
    assert not (repo / ".git" / "refs" / "heads" / "main").exists()
    assert read_head(repo) == (git(repo, "rev-parse", "HEAD"), "main")


def test_head_detached(repo: Path) -> None:
    git(repo, "checkout", "--quiet", "--detach")
    assert read_head(repo) == (git(repo, "rev-parse", "HEAD"), None)


def test_head_of_linked_worktree(repo: Path, tmp_path: Path) -> None:
    worktree = tmp_path / "worktree"
    git(repo, "worktree", "add", "--quiet", "-b", "side", str(worktree))
    assert (worktree / ".git").is_file()
    assert read_head(worktree) == (git(repo, "rev-parse", "HEAD"), "side")


def test_head_unborn_branch(tmp_path: Path) -> None:
    git(tmp_path, "init", "--quiet", "-b", "main")
    assert read_head(tmp_path) == (None, "main")


def test_head_without_git(tmp_path: Path) -> None:
    assert read_head(tmp_path) == (None, None)


def test_head_ignores_parent_repository(repo: Path) -> None:
    inner = repo / "inner"
    inner.mkdir()
    assert read_head(inner) == (None, None)


def test_head_rejects_ref_outside_refs(repo: Path) -> None:
    (repo / ".git" / "HEAD").write_text("ref: ../../outside\n", encoding="utf-8")
    assert read_head(repo) == (None, None)
