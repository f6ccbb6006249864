"""Tests for socfeed.sources.fetch and .git: clone, pull, local folders, mirror, failures.

Every "remote" is a repository made in the test and cloned through a file:// URL, so no
test reaches the network.
"""

from __future__ import annotations

import logging
import re
import subprocess
import time
from pathlib import Path

import pytest

from socfeed.config import Settings, Source
from socfeed.errors import SourceError
from socfeed.sources import fetch, iter_rule_files
from socfeed.sources import git as git_module

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


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


def make_upstream(folder: Path, files: dict[str, str]) -> Path:
    """Create a repository with one commit of ``files`` on branch main."""
    folder.mkdir(parents=True)
    git(folder, "init", "--quiet", "-b", "main")
    commit_files(folder, files, "initial rules")
    return folder


def commit_files(repo: Path, files: dict[str, str], message: str) -> str:
    for relative, text in files.items():
        path = repo / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def source_for(upstream: Path, **fields: object) -> Source:
    values: dict[str, object] = {
        "name": "team-rules",
        "repo": "example/team-rules",
        "format": "sigma",
        "include": ("rules/**/*.yml",),
        "url": upstream.as_uri(),
    }
    values.update(fields)
    return Source(**values)  # type: ignore[arg-type]


def settings_for(tmp_path: Path, source: Source, **fields: object) -> Settings:
    return Settings(sources=(source,), cache_dir=tmp_path / "cache", **fields)  # type: ignore[arg-type]


@pytest.fixture
def upstream(tmp_path: Path) -> Path:
    return make_upstream(
        tmp_path / "upstream",
        {"rules/a.yml": "title: A\n", "rules/win/b.yml": "title: B\n", "README.md": "# rules\n"},
    )


def test_clone_first_fetch(tmp_path: Path, upstream: Path) -> None:
    source = source_for(upstream)
    checkout = fetch(source, settings_for(tmp_path, source))
    assert checkout.mode == "clone"
    assert checkout.root == (tmp_path / "cache" / "team-rules").resolve()
    assert checkout.commit == git(upstream, "rev-parse", "HEAD")
    assert checkout.ref == "main"
    assert checkout.is_sample is False
    assert TIMESTAMP.match(checkout.retrieved_at)
    assert iter_rule_files(source, checkout.root) == ["rules/a.yml", "rules/win/b.yml"]


def test_clone_is_shallow(tmp_path: Path, upstream: Path) -> None:
    commit_files(upstream, {"rules/c.yml": "title: C\n"}, "second")
    source = source_for(upstream)
    checkout = fetch(source, settings_for(tmp_path, source))
    assert git(checkout.root, "rev-list", "--count", "HEAD") == "1"


def test_clone_leaves_no_temporary_folder(tmp_path: Path, upstream: Path) -> None:
    source = source_for(upstream)
    fetch(source, settings_for(tmp_path, source))
    assert [path.name for path in (tmp_path / "cache").iterdir()] == ["team-rules"]


def test_pull_after_upstream_commit(tmp_path: Path, upstream: Path) -> None:
    source = source_for(upstream)
    settings = settings_for(tmp_path, source)
    first = fetch(source, settings)
    (upstream / "rules" / "a.yml").unlink()
    new_commit = commit_files(upstream, {"rules/new.yml": "title: New\n"}, "replace a")
    second = fetch(source, settings)
    assert second.mode == "pull"
    assert second.commit == new_commit
    assert second.commit != first.commit
    assert second.root == first.root
    assert iter_rule_files(source, second.root) == ["rules/new.yml", "rules/win/b.yml"]


def test_pull_discards_local_changes(tmp_path: Path, upstream: Path) -> None:
    source = source_for(upstream)
    settings = settings_for(tmp_path, source)
    checkout = fetch(source, settings)
    (checkout.root / "rules" / "a.yml").write_text("tampered\n", encoding="utf-8")
    (checkout.root / "rules" / "stray.yml").write_text("title: stray\n", encoding="utf-8")
    fetch(source, settings)
    assert (checkout.root / "rules" / "a.yml").read_text(encoding="utf-8") == "title: A\n"
    assert not (checkout.root / "rules" / "stray.yml").exists()


def test_pull_follows_changed_url(tmp_path: Path, upstream: Path) -> None:
    source = source_for(upstream)
    fetch(source, settings_for(tmp_path, source))
    other = make_upstream(tmp_path / "other", {"rules/other.yml": "title: O\n"})
    moved = source_for(other)
    checkout = fetch(moved, settings_for(tmp_path, moved))
    assert checkout.commit == git(other, "rev-parse", "HEAD")
    assert iter_rule_files(moved, checkout.root) == ["rules/other.yml"]


def test_clone_of_branch(tmp_path: Path, upstream: Path) -> None:
    git(upstream, "checkout", "--quiet", "-b", "dev")
    dev_commit = commit_files(upstream, {"rules/dev.yml": "title: Dev\n"}, "dev only")
    git(upstream, "checkout", "--quiet", "main")
    source = source_for(upstream, ref="dev")
    checkout = fetch(source, settings_for(tmp_path, source))
    assert checkout.commit == dev_commit
    assert checkout.ref == "dev"


def test_clone_failure_raises_source_error(tmp_path: Path) -> None:
    source = source_for(tmp_path / "no-such-repository")
    with pytest.raises(SourceError) as caught:
        fetch(source, settings_for(tmp_path, source))
    message = str(caught.value)
    assert message.startswith("fetch of source 'team-rules' from file://")
    assert "failed with exit code 128" in message
    assert "does not appear to be a git repository" in message or "not found" in message


def test_clone_failure_leaves_cache_empty(tmp_path: Path) -> None:
    source = source_for(tmp_path / "no-such-repository")
    with pytest.raises(SourceError):
        fetch(source, settings_for(tmp_path, source))
    assert list((tmp_path / "cache").iterdir()) == []


def test_clone_failure_hides_credentials(tmp_path: Path) -> None:
    # Port 9 (discard) on the loopback address refuses the connection at once.
    source = source_for(tmp_path, url="https://user:s3cret-token@127.0.0.1:9/rules.git")
    with pytest.raises(SourceError) as caught:
        fetch(source, settings_for(tmp_path, source, git_timeout=60.0))
    assert "s3cret-token" not in str(caught.value)
    assert "***@127.0.0.1" in str(caught.value)


def test_cache_folder_not_a_clone(tmp_path: Path, upstream: Path) -> None:
    source = source_for(upstream)
    (tmp_path / "cache" / "team-rules").mkdir(parents=True)
    with pytest.raises(SourceError, match="exists but is not a Git clone; delete it"):
        fetch(source, settings_for(tmp_path, source))


def test_local_folder_without_git(tmp_path: Path) -> None:
    folder = tmp_path / "plain"
    (folder / "rules").mkdir(parents=True)
    (folder / "rules" / "a.yml").write_text("title: A\n", encoding="utf-8")
    source = source_for(tmp_path)
    checkout = fetch(source, settings_for(tmp_path, source), path=folder)
    assert checkout.mode == "local"
    assert checkout.commit is None
    assert checkout.ref is None
    assert checkout.location == str(folder)
    assert iter_rule_files(source, checkout.root) == ["rules/a.yml"]


def test_local_git_work_tree(tmp_path: Path, upstream: Path) -> None:
    source = source_for(upstream)
    checkout = fetch(source, settings_for(tmp_path, source), path=upstream)
    assert checkout.mode == "local"
    assert checkout.commit == git(upstream, "rev-parse", "HEAD")
    assert checkout.ref == "main"


def test_local_path_beats_mirror(tmp_path: Path, upstream: Path) -> None:
    source = source_for(upstream)
    settings = settings_for(tmp_path, source, mirror_dir=tmp_path / "mirror")
    assert fetch(source, settings, path=upstream).mode == "local"


def test_local_folder_missing(tmp_path: Path) -> None:
    source = source_for(tmp_path)
    with pytest.raises(SourceError, match=r"local folder .*missing for source 'team-rules'"):
        fetch(source, settings_for(tmp_path, source), path=tmp_path / "missing")


def test_mirror_reads_source_folder(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    (mirror / "team-rules" / "rules").mkdir(parents=True)
    (mirror / "team-rules" / "rules" / "m.yml").write_text("title: M\n", encoding="utf-8")
    source = source_for(tmp_path)
    checkout = fetch(source, settings_for(tmp_path, source, mirror_dir=mirror))
    assert checkout.mode == "mirror"
    assert checkout.root == (mirror / "team-rules").resolve()
    assert checkout.commit is None
    assert iter_rule_files(source, checkout.root) == ["rules/m.yml"]


def test_mirror_git_clone_gives_commit(tmp_path: Path, upstream: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    git(mirror, "clone", "--quiet", upstream.as_uri(), "team-rules")
    source = source_for(upstream)
    checkout = fetch(source, settings_for(tmp_path, source, mirror_dir=mirror))
    assert checkout.commit == git(upstream, "rev-parse", "HEAD")


def test_mirror_missing_source_folder(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    source = source_for(tmp_path)
    with pytest.raises(SourceError) as caught:
        fetch(source, settings_for(tmp_path, source, mirror_dir=mirror))
    assert str(mirror / "team-rules") in str(caught.value)
    assert "one folder per source, named after the source" in str(caught.value)


def test_run_git_timeout_kills_helpers(tmp_path: Path) -> None:
    # The alias runs "sleep" in a shell that git starts, so killing git alone would not
    # end the sleep.
    started = time.monotonic()
    with pytest.raises(git_module.GitError, match=r"timed out after 0\.5 s"):
        git_module.run_git(["-c", "alias.pause=!sleep 30", "pause"], cwd=tmp_path, timeout=0.5)
    assert time.monotonic() - started < 10


def test_run_git_failure_message(tmp_path: Path) -> None:
    with pytest.raises(git_module.GitError, match="git rev-parse HEAD failed with exit code"):
        git_module.run_git(["rev-parse", "HEAD"], cwd=tmp_path, timeout=30)


def test_git_environment_never_prompts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_DIR", "/elsewhere/.git")
    env = git_module.git_environment()
    assert env["GIT_TERMINAL_PROMPT"] == "0"
    assert env["GIT_LFS_SKIP_SMUDGE"] == "1"
    assert "GIT_DIR" not in env


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        ("https://user:token@github.com/a/b.git", "https://***@github.com/a/b.git"),
        ("https://token@github.com/a/b.git", "https://***@github.com/a/b.git"),
        ("https://github.com/a/b.git", "https://github.com/a/b.git"),
        ("git@github.com:a/b.git", "git@github.com:a/b.git"),
    ],
)
def test_redact_url(text: str, redacted: str) -> None:
    assert git_module.redact_url(text) == redacted


def test_fetch_logs_source_and_commit(
    tmp_path: Path, upstream: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = source_for(upstream)
    with caplog.at_level(logging.INFO, logger="socfeed.sources"):
        checkout = fetch(source, settings_for(tmp_path, source))
    assert f"fetched source=team-rules mode=clone commit={checkout.commit}" in caplog.text
