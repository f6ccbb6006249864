"""Sources and settings: the shipped defaults.toml merged with an optional user TOML file."""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from platformdirs import user_cache_dir

from socfeed.errors import ConfigError, Location
from socfeed.formats import format_names
from socfeed.sources.globs import compile_glob

CONFIG_ENV = "SOCFEED_CONFIG"
CACHE_ENV = "SOCFEED_CACHE"
MIRROR_ENV = "SOCFEED_MIRROR"
DB_ENV = "SOCFEED_DB"

DEFAULT_GIT_TIMEOUT = 900.0  # seconds
DEFAULT_MAX_FILE_BYTES = 2 * 1024 * 1024

# Source names become folder names in the cache and the mirror, so they are kept to
# characters that are safe in a path segment on every platform.
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_REPO = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
# A ref goes to git as an argument, so it must not start with "-" (an option).
_REF = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_./-]*$")
_URL_SCHEMES = ("https://", "http://", "ssh://", "git://", "file://")
_SCP_LIKE_URL = re.compile(r"^[A-Za-z0-9_.-]+@[A-Za-z0-9_.-]+:[^:]")


@dataclass(frozen=True)
class Source:
    """A Git repository of rules and how to read it."""

    name: str
    repo: str  # "owner/name" on GitHub, base of the links to original files
    format: str
    include: tuple[str, ...]
    exclude: tuple[str, ...] = ()
    # Files the format reads as context, not as rules (Splunk macros, stories, ...).
    context: tuple[str, ...] = ()
    url: str = ""  # clone URL; empty means https://github.com/<repo>.git
    ref: str | None = None  # branch or tag; None means the remote's default branch
    licence: str = ""
    official: bool = False  # maintained by the vendor of the product the rules target
    vendor: str = ""
    enabled: bool = True

    def __post_init__(self) -> None:
        if not self.url:
            object.__setattr__(self, "url", f"https://github.com/{self.repo}.git")

    @property
    def web_url(self) -> str:
        """Return the repository's GitHub page."""
        return f"https://github.com/{self.repo}"


@dataclass(frozen=True)
class Settings:
    """Every source (enabled or not) and where socfeed keeps and finds files."""

    sources: tuple[Source, ...]
    cache_dir: Path
    mirror_dir: Path | None = None
    # The --db value, SOCFEED_DB or the config file's db; None lets the store pick its default.
    db: str | None = None
    git_timeout: float = DEFAULT_GIT_TIMEOUT
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    config_file: Path | None = None

    def enabled_sources(self) -> list[Source]:
        """Return the enabled sources in config order."""
        return [source for source in self.sources if source.enabled]

    def source(self, name: str) -> Source:
        """Return the source called ``name``; raise ConfigError listing the known names."""
        for source in self.sources:
            if source.name == name:
                return source
        known = ", ".join(source.name for source in self.sources)
        raise ConfigError(f"unknown source {name!r}; configured sources: {known}")

    def db_url(self) -> str:
        """Return the store's SQLAlchemy URL for this configuration."""
        from socfeed.store import resolve_db_url

        return resolve_db_url(self.db)


@dataclass
class _TomlFile:
    """A parsed config file with its text, kept to find the line of a key in errors."""

    label: str  # path shown in error messages
    text: str
    data: dict[str, Any]
    folder: Path | None  # base of relative paths; None for the packaged defaults

    def error(self, reason: str, table: str | None = None, key: str | None = None) -> ConfigError:
        line = _find_line(self.text, table, key) if table is not None else None
        return ConfigError(reason, Location("config", self.label, line))


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    *,
    db: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Read the shipped defaults, then the user config file, then the environment.

    The config file is ``config_file`` or else SOCFEED_CONFIG. SOCFEED_CACHE and
    SOCFEED_MIRROR override the file's [settings]; ``db`` (the --db value) overrides
    SOCFEED_DB, which overrides the file's ``db``. Raises ConfigError naming the file, line
    (when known) and key of the first invalid value.
    """
    env = os.environ if environ is None else environ
    defaults = _load_defaults()
    user_path = config_file or env.get(CONFIG_ENV) or None
    user = _load_user_file(Path(user_path)) if user_path else None

    files = [defaults] if user is None else [defaults, user]
    for toml_file in files:
        _check_keys(toml_file, "", toml_file.data, {"settings", "sources"})
    sources = _merge_sources(files)
    file_values: dict[str, Any] = {}
    for toml_file in files:
        file_values.update(_read_settings_table(toml_file))

    cache_dir = _env_path(env, CACHE_ENV) or file_values.get("cache")
    mirror_dir = _env_path(env, MIRROR_ENV) or file_values.get("mirror")
    if mirror_dir is not None and not mirror_dir.is_dir():
        raise ConfigError(
            f"mirror folder {mirror_dir} not found; create it with one folder per source "
            f"or unset {MIRROR_ENV}"
        )
    return Settings(
        sources=tuple(sources),
        cache_dir=cache_dir or Path(user_cache_dir("socfeed", appauthor=False)),
        mirror_dir=mirror_dir,
        db=db or env.get(DB_ENV) or file_values.get("db"),
        git_timeout=file_values.get("git_timeout", DEFAULT_GIT_TIMEOUT),
        max_file_bytes=file_values.get("max_file_bytes", DEFAULT_MAX_FILE_BYTES),
        config_file=Path(user_path).expanduser().resolve() if user_path else None,
    )


def _load_defaults() -> _TomlFile:
    text = resources.files("socfeed").joinpath("defaults.toml").read_text(encoding="utf-8")
    return _parse_toml(text, "socfeed/defaults.toml", None)


def _load_user_file(path: Path) -> _TomlFile:
    path = path.expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found; check --config or {CONFIG_ENV}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"reading config file {path} failed: {exc}") from exc
    return _parse_toml(text, str(path), path.resolve().parent)


_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")


def _parse_toml(text: str, label: str, folder: Path | None) -> _TomlFile:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # Python 3.11's TOMLDecodeError has no line attribute; the position ends the message.
        message = str(exc)
        match = _TOML_POSITION.search(message)
        line = column = None
        advice = "fix the syntax"
        if match:
            line, column = int(match.group(1)), int(match.group(2))
            message = message[: match.start()]
            advice = "fix the syntax at this line and column"
        reason = f"invalid TOML: {message}; {advice}"
        raise ConfigError(reason, Location("config", label, line, column)) from exc
    return _TomlFile(label=label, text=text, data=data, folder=folder)


def _env_path(env: Mapping[str, str], name: str) -> Path | None:
    value = env.get(name, "")
    return Path(value).expanduser().absolute() if value else None


def _check_keys(file: _TomlFile, table: str, data: dict[str, Any], known: set[str]) -> None:
    for key in data:
        if key not in known:
            where = f"[{table}]" if table else "the top level"
            close = difflib.get_close_matches(key, sorted(known), n=1)
            if close:
                advice = f"did you mean {close[0]!r}?"
            else:
                advice = f"known keys: {', '.join(sorted(known))}"
            raise file.error(f"unknown key {key!r} in {where}; {advice}", table, key)


def _settings_converters(file: _TomlFile) -> dict[str, Callable[[Any], Any]]:
    return {
        "cache": lambda value: _path_value(file, value),
        "mirror": lambda value: _path_value(file, value),
        "db": lambda value: _db_value(file, value),
        "git_timeout": _positive_number,
        "max_file_bytes": _positive_int,
    }


def _read_settings_table(file: _TomlFile) -> dict[str, Any]:
    table = file.data.get("settings", {})
    if not isinstance(table, dict):
        raise file.error("'settings' must be a table; write it as [settings]", "", "settings")
    converters = _settings_converters(file)
    _check_keys(file, "settings", table, set(converters))
    values: dict[str, Any] = {}
    for key, value in table.items():
        try:
            values[key] = converters[key](value)
        except ValueError as exc:
            raise file.error(f"settings.{key}: {exc}", "settings", key) from None
    return values


def _path_value(file: _TomlFile, value: Any) -> Path:
    if not isinstance(value, str) or not value:
        raise ValueError("expected a folder path as a non-empty string")
    path = Path(value).expanduser()
    if not path.is_absolute() and file.folder is not None:
        path = file.folder / path
    return path.absolute()


def _db_value(file: _TomlFile, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("expected a SQLite file path or a database URL as a string")
    if "://" in value:
        return value
    return str(_path_value(file, value))


def _positive_number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError(f"expected a number greater than 0, got {value!r}")
    return float(value)


def _positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"expected a whole number greater than 0, got {value!r}")
    return value


def _merge_sources(files: list[_TomlFile]) -> list[Source]:
    """Merge the [sources.*] tables of every file, later files overriding earlier ones."""
    merged: dict[str, dict[str, Any]] = {}
    declared_in: dict[str, _TomlFile] = {}
    for file in files:
        tables = file.data.get("sources", {})
        if not isinstance(tables, dict):
            raise file.error("'sources' must be a table of [sources.<name>] tables", "", "sources")
        for name, table in tables.items():
            values = _read_source_table(file, name, table)
            merged.setdefault(name, {}).update(values)
            declared_in.setdefault(name, file)
    return [_build_source(name, values, declared_in[name]) for name, values in merged.items()]


def _read_source_table(file: _TomlFile, name: str, table: Any) -> dict[str, Any]:
    header = f"sources.{name}"
    if not isinstance(table, dict):
        raise file.error(f"{header} must be a table; write it as [{header}]", "sources", name)
    if not _NAME.match(name):
        raise file.error(
            f"invalid source name {name!r}; use lower-case letters, digits, '.', '_' and '-', "
            "starting with a letter or digit",
            header,
        )
    _check_keys(file, header, table, set(_SOURCE_CONVERTERS))
    values: dict[str, Any] = {}
    for key, value in table.items():
        try:
            values[key] = _SOURCE_CONVERTERS[key](value)
        except ValueError as exc:
            raise file.error(f"{header}.{key}: {exc}", header, key) from None
    return values


def _build_source(name: str, values: dict[str, Any], file: _TomlFile) -> Source:
    header = f"sources.{name}"
    required = (("repo", '"owner/name"'), ("format", '"sigma"'), ("include", '["**/*.yml"]'))
    for key, example in required:
        if key not in values:
            raise file.error(f"source {name!r} has no {key!r}; add {key} = {example}", header)
    return Source(name=name, **values)


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {type(value).__name__} {value!r}")
    return value.strip()


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def _repo(value: Any) -> str:
    text = _text(value)
    if not _REPO.match(text):
        raise ValueError(f'expected a GitHub repository as "owner/name", got {text!r}')
    return text


def _format_name(value: Any) -> str:
    text = _text(value)
    known = format_names()
    if text not in known:
        raise ValueError(f"unknown format {text!r}; use one of {', '.join(known)}")
    return text


def _clone_url(value: Any) -> str:
    text = _text(value)
    is_local_path = os.path.isabs(text)
    if not (text.startswith(_URL_SCHEMES) or _SCP_LIKE_URL.match(text) or is_local_path):
        # Transports such as ext:: run commands, so only plain URLs and paths are accepted.
        raise ValueError(
            f"unsupported clone URL {text!r}; use an https://, ssh://, git:// or file:// URL, "
            "user@host:path or an absolute folder path"
        )
    return text


def _ref(value: Any) -> str | None:
    text = _text(value)
    if not text:
        return None
    if not _REF.match(text) or ".." in text:
        raise ValueError(f"invalid branch or tag name {text!r}")
    return text


def _globs(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError('expected a list of glob strings, such as ["rules/**/*.yml"]')
    for pattern in value:
        compile_glob(pattern)  # raises ValueError naming the pattern
    return tuple(value)


_SOURCE_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "repo": _repo,
    "url": _clone_url,
    "ref": _ref,
    "format": _format_name,
    "include": _globs,
    "exclude": _globs,
    "context": _globs,
    "licence": _text,
    "official": _flag,
    "vendor": _text,
    "enabled": _flag,
}

_HEADER = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(?:#.*)?$")


def _find_line(text: str, table: str, key: str | None) -> int | None:
    """Return the 1-based line of ``key`` in ``[table]``, or of the header when key is None.

    Only standard table headers and ``key = value`` lines are recognized. Keys written as
    dotted keys or in inline tables give None, so the error is shown without a line.
    """
    current = ""
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            parts = header.group(1).split(".")
            current = ".".join(part.strip().strip("\"'") for part in parts)
            if key is None and current == table:
                return number
            continue
        if key is not None and current == table and _assigns_key(line, key):
            return number
    return None


def _assigns_key(line: str, key: str) -> bool:
    stripped = line.lstrip()
    for quoted in (key, f'"{key}"', f"'{key}'"):
        if stripped.startswith(quoted) and stripped[len(quoted) :].lstrip().startswith("="):
            return True
    return False


__all__ = [
    "CACHE_ENV",
    "CONFIG_ENV",
    "DB_ENV",
    "MIRROR_ENV",
    "Settings",
    "Source",
    "load_settings",
]
