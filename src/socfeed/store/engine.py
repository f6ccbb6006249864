"""Open the store: a SQLite file by default, PostgreSQL when a URL names it."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from platformdirs import user_data_dir
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from socfeed.errors import StoreError
from socfeed.store import search
from socfeed.store.schema import metadata

log = logging.getLogger(__name__)

DB_ENV = "SOCFEED_DB"


def default_db_path() -> Path:
    """Return the SQLite file used when neither --db nor SOCFEED_DB is set."""
    return Path(user_data_dir("socfeed", appauthor=False)) / "socfeed.db"


def resolve_db_url(db: str | os.PathLike[str] | None = None) -> str:
    """Return an SQLAlchemy URL for a --db value, SOCFEED_DB, or the default file.

    A value with ``://`` is taken as a URL (``postgresql://`` is given the psycopg 3
    driver); anything else is a path to a SQLite file.
    """
    value = str(db) if db else os.environ.get(DB_ENV, "")
    if not value:
        value = str(default_db_path())
    if "://" not in value:
        return f"sqlite:///{Path(value).expanduser().resolve()}"
    if value.startswith("postgresql://") or value.startswith("postgres://"):
        return "postgresql+psycopg://" + value.split("://", 1)[1]
    return value


def create_store_engine(url: str) -> Engine:
    """Create the engine and the tables; SQLite files get WAL and foreign keys."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(f"invalid database URL {url!r}: {exc}") from exc
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        # Web requests run in a thread pool, so a connection may move between threads.
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    engine = create_engine(url, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    try:
        metadata.create_all(engine)
        search.install(engine)
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot open the store at {parsed!r}: {exc}") from exc
    log.debug("store opened url=%s", parsed.render_as_string(hide_password=True))
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the web app read while an ingest writes.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
