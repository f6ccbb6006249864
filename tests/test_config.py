"""Tests for socfeed.config: shipped defaults, user overrides, environment and errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from socfeed.config import Settings, Source, load_settings
from socfeed.errors import ConfigError
from socfeed.formats import format_names

DEFAULT_NAMES = [
    "azure-sentinel",
    "sigma",
    "elastic-detection-rules",
    "splunk-security-content",
    "m365-hunting-queries",
    "sentinel-queries-reprise99",
    "falconfriday",
    "bertjanp",
]


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "socfeed.toml"
    path.write_text(text, encoding="utf-8")
    return path


def config_error(tmp_path: Path, text: str) -> ConfigError:
    path = write_config(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    return caught.value


def test_defaults_list_every_source() -> None:
    settings = load_settings(environ={})
    assert [source.name for source in settings.sources] == DEFAULT_NAMES


def test_defaults_use_registered_formats() -> None:
    settings = load_settings(environ={})
    for source in settings.sources:
        assert source.format in format_names(), source.name


def test_defaults_clone_from_github() -> None:
    source = load_settings(environ={}).source("sigma")
    assert source.url == "https://github.com/SigmaHQ/sigma.git"


def test_defaults_web_url() -> None:
    source = load_settings(environ={}).source("splunk-security-content")
    assert source.web_url == "https://github.com/splunk/security_content"


def test_defaults_official_flags() -> None:
    settings = load_settings(environ={})
    official = {source.name for source in settings.sources if source.official}
    assert official == {
        "azure-sentinel",
        "elastic-detection-rules",
        "splunk-security-content",
        "m365-hunting-queries",
    }


def test_defaults_splunk_context_globs() -> None:
    source = load_settings(environ={}).source("splunk-security-content")
    assert source.context == ("macros/**/*.yml", "stories/**/*.yml", "data_sources/**/*.yml")


def test_defaults_settings_values() -> None:
    settings = load_settings(environ={})
    assert settings.git_timeout == 900
    assert settings.max_file_bytes == 2 * 1024 * 1024
    assert settings.mirror_dir is None
    assert settings.config_file is None


def test_user_file_overrides_one_field(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[sources.sigma]\nref = "r0.9"\n')
    sigma = load_settings(path, environ={}).source("sigma")
    assert sigma.ref == "r0.9"
    assert sigma.include == ("rules*/**/*.yml", "deprecated/**/*.yml")


def test_user_file_disables_source(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[sources.bertjanp]\nenabled = false\n")
    settings = load_settings(path, environ={})
    names = [source.name for source in settings.enabled_sources()]
    assert "bertjanp" not in names
    assert len(names) == len(DEFAULT_NAMES) - 1


def test_user_file_adds_source(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        """
[sources.team-rules]
repo = "example/team-rules"
url = "https://git.example.org/team-rules.git"
format = "sigma"
include = ["**/*.yml"]
exclude = ["tests/**"]
licence = "MIT"
""",
    )
    settings = load_settings(path, environ={})
    added = settings.source("team-rules")
    assert added == Source(
        name="team-rules",
        repo="example/team-rules",
        url="https://git.example.org/team-rules.git",
        format="sigma",
        include=("**/*.yml",),
        exclude=("tests/**",),
        licence="MIT",
    )
    assert settings.sources[-1].name == "team-rules"


def test_config_file_from_environment(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[sources.sigma]\nenabled = false\n")
    settings = load_settings(environ={"SOCFEED_CONFIG": str(path)})
    assert settings.source("sigma").enabled is False
    assert settings.config_file == path.resolve()


def test_cache_from_environment_wins(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[settings]\ncache = "from-file"\n')
    settings = load_settings(path, environ={"SOCFEED_CACHE": str(tmp_path / "env-cache")})
    assert settings.cache_dir == tmp_path / "env-cache"


def test_cache_relative_to_config_file(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[settings]\ncache = "cache"\n')
    assert load_settings(path, environ={}).cache_dir == tmp_path / "cache"


def test_cache_default_is_user_cache(tmp_path: Path) -> None:
    assert load_settings(environ={}).cache_dir.name == "socfeed"


def test_mirror_from_environment(tmp_path: Path) -> None:
    settings = load_settings(environ={"SOCFEED_MIRROR": str(tmp_path)})
    assert settings.mirror_dir == tmp_path


def test_mirror_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"mirror folder .*missing.* not found"):
        load_settings(environ={"SOCFEED_MIRROR": str(tmp_path / "missing")})


def test_db_argument_beats_environment(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[settings]\ndb = "file.db"\n')
    settings = load_settings(path, db="cli.db", environ={"SOCFEED_DB": "env.db"})
    assert settings.db == "cli.db"


def test_db_environment_beats_file(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[settings]\ndb = "file.db"\n')
    settings = load_settings(path, environ={"SOCFEED_DB": "env.db"})
    assert settings.db == "env.db"


def test_db_from_file_relative(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[settings]\ndb = "file.db"\n')
    assert load_settings(path, environ={}).db == str(tmp_path / "file.db")


def test_db_url_from_file_kept(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[settings]\ndb = "postgresql://db.example/socfeed"\n')
    assert load_settings(path, environ={}).db == "postgresql://db.example/socfeed"


def test_db_url_resolves_sqlite(tmp_path: Path) -> None:
    settings = load_settings(db=str(tmp_path / "x.db"), environ={})
    assert settings.db_url() == f"sqlite:///{tmp_path / 'x.db'}"


def test_unknown_source_lists_known() -> None:
    settings = load_settings(environ={})
    with pytest.raises(ConfigError, match="unknown source 'nope'; configured sources: azure"):
        settings.source("nope")


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config file .*absent\.toml not found"):
        load_settings(tmp_path / "absent.toml", environ={})


def test_invalid_toml_has_position(tmp_path: Path) -> None:
    error = config_error(tmp_path, '[sources.sigma]\nref = "unterminated\n')
    assert error.location is not None
    assert error.location.line == 2
    assert error.location.column is not None
    assert "invalid TOML" in error.reason


def test_unknown_key_suggests_spelling(tmp_path: Path) -> None:
    error = config_error(tmp_path, '[sources.sigma]\n\nincludes = ["x/*.yml"]\n')
    assert error.location is not None
    assert error.location.line == 3
    assert "unknown key 'includes' in [sources.sigma]; did you mean 'include'?" in error.reason


def test_unknown_top_level_key(tmp_path: Path) -> None:
    error = config_error(tmp_path, 'source = "sigma"\n')
    assert error.location is not None
    assert error.location.line == 1
    assert "unknown key 'source' in the top level" in error.reason


def test_wrong_type_names_key_and_line(tmp_path: Path) -> None:
    error = config_error(tmp_path, '[sources.sigma]\nlicence = "x"\ninclude = "rules/*.yml"\n')
    assert error.location is not None
    assert error.location.line == 3
    assert error.reason.startswith("sources.sigma.include: expected a list of glob strings")


def test_error_names_file(tmp_path: Path) -> None:
    error = config_error(tmp_path, "[sources.sigma]\nofficial = 1\n")
    assert str(error).startswith(f"config:{tmp_path / 'socfeed.toml'}:2: ")


def test_new_source_without_repo(tmp_path: Path) -> None:
    error = config_error(tmp_path, '\n[sources.mine]\nformat = "sigma"\ninclude = ["*.yml"]\n')
    assert error.location is not None
    assert error.location.line == 2
    assert "source 'mine' has no 'repo'; add repo = \"owner/name\"" in error.reason


def test_unknown_format_lists_known(tmp_path: Path) -> None:
    error = config_error(tmp_path, '[sources.sigma]\nformat = "yara"\n')
    assert "unknown format 'yara'; use one of sentinel, sigma" in error.reason


def test_invalid_source_name(tmp_path: Path) -> None:
    error = config_error(tmp_path, '[sources."../escape"]\nrepo = "a/b"\n')
    assert "invalid source name '../escape'" in error.reason


def test_invalid_repo(tmp_path: Path) -> None:
    error = config_error(tmp_path, '[sources.sigma]\nrepo = "https://github.com/a/b"\n')
    assert 'expected a GitHub repository as "owner/name"' in error.reason


@pytest.mark.parametrize(
    "url",
    ["ext::sh -c touch% /tmp/pwned", "-uhelp", "relative/folder", "fd::17"],
)
def test_clone_url_rejected(tmp_path: Path, url: str) -> None:
    error = config_error(tmp_path, f'[sources.sigma]\nurl = "{url}"\n')
    assert "unsupported clone URL" in error.reason


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/SigmaHQ/sigma.git",
        "ssh://git@github.com/SigmaHQ/sigma.git",
        "git@github.com:SigmaHQ/sigma.git",
        "file:///srv/git/sigma.git",
        "/srv/git/sigma.git",
    ],
)
def test_clone_url_accepted(tmp_path: Path, url: str) -> None:
    path = write_config(tmp_path, f'[sources.sigma]\nurl = "{url}"\n')
    assert load_settings(path, environ={}).source("sigma").url == url


@pytest.mark.parametrize("ref", ["--upload-pack=x", "a..b", "main branch"])
def test_invalid_ref_rejected(tmp_path: Path, ref: str) -> None:
    error = config_error(tmp_path, f'[sources.sigma]\nref = "{ref}"\n')
    assert "invalid branch or tag name" in error.reason


@pytest.mark.parametrize("pattern", ["/abs/*.yml", "../up/*.yml", "rules/[abc.yml", ""])
def test_invalid_glob_rejected(tmp_path: Path, pattern: str) -> None:
    error = config_error(tmp_path, f'[sources.sigma]\ninclude = ["{pattern}"]\n')
    assert error.reason.startswith("sources.sigma.include: ")


def test_settings_timeout_must_be_positive(tmp_path: Path) -> None:
    error = config_error(tmp_path, "[settings]\ngit_timeout = 0\n")
    assert error.location is not None
    assert error.location.line == 2
    assert "expected a number greater than 0" in error.reason


def test_settings_is_frozen() -> None:
    settings = load_settings(environ={})
    assert isinstance(settings, Settings)
    with pytest.raises(AttributeError):
        settings.mirror_dir = Path("/")  # type: ignore[misc]


def test_invalid_toml_at_end(tmp_path: Path) -> None:
    error = config_error(tmp_path, '[sources.sigma]\nref = "unterminated')
    assert error.reason == "invalid TOML: Unterminated string (at end of document); fix the syntax"
