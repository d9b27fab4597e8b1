"""The declarative base, naming conventions, and engine/session construction.

Engines are built in the composition root (`bootstrap.py`), never at import time. Repositories get a `Session`
and never commit: the edge (a view, a job, a CLI command) opens the transaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import MetaData, TextClause, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, DisconnectionError, IntegrityError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


T = TypeVar("T")
PING_AFTER_IDLE_SECONDS = 2.0


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    """Timezone-aware now; the shell passes it into pure code instead of the code reading a clock."""
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """A stored timestamp as an aware UTC datetime: we store UTC, and SQLite hands it back without its zone (read
    naively, `astimezone` would take it for the server's local time)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def make_engine(url: str, *, statement_timeout_ms: int = 0, **kwargs: object) -> Engine:
    """An engine for `url`. On PostgreSQL, `statement_timeout_ms` (0: none) is set for every connection it opens."""
    if url.startswith("sqlite"):
        _ensure_sqlite_folder(url)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    connect_args: dict[str, object] = {"connect_timeout": 3}
    if statement_timeout_ms:
        connect_args["options"] = f"-c statement_timeout={int(statement_timeout_ms)}"
    kwargs.setdefault("connect_args", connect_args)
    engine = create_engine(url, **kwargs)
    _ping_after_idle(engine)
    return engine


def _ping_after_idle(engine: Engine) -> None:
    """Test a pooled connection before use only when it sat idle for a while.

    SQLAlchemy's `pool_pre_ping` pings on every checkout: one more round trip on every USSD hop, most of whose
    connections were in use a few milliseconds earlier. A connection idle for longer than `PING_AFTER_IDLE_SECONDS`
    (when a restarted or failed-over server is likely to have dropped it) is pinged with the dialect's own ping; a
    dead one raises `DisconnectionError`, on which the pool replaces it with a fresh connection (SQLAlchemy's
    documented custom pessimistic handling). A connection that breaks while busy is the optimistic case SQLAlchemy
    handles by itself: the statement fails (the hop ends politely) and the pool discards every older connection."""

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            raise DisconnectionError("a pooled connection was dropped while idle") from exc


def _ensure_sqlite_folder(url: str) -> None:
    path = url.split("///", 1)[-1]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def insert_once(session: Session, row: T, find_existing: Callable[[], T | None]) -> T:
    """Add `row`, or return the row already stored with its unique key (`find_existing`): a retry, or a concurrent
    transaction that stored it first. On PostgreSQL the insert runs in a savepoint, so the caller's transaction
    survives the conflict, and the look-up runs only after one (a retry is rare; a look-up first would cost every
    insert a round trip). Not on SQLite: pysqlite opens its transaction lazily, so the savepoint could be the
    transaction's first statement and its RELEASE would commit; SQLite lets one writer in at a time, so a look-up
    first cannot race."""
    if session.get_bind().dialect.name == "sqlite":
        existing = find_existing()
        if existing is not None:
            return existing
        session.add(row)
        session.flush()
        return row
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        existing = find_existing()
        if existing is None:
            raise
        return existing
    return row


class DriverStatement:
    """A write that stands alone, run on a pooled DBAPI connection of an autocommit engine: compiled once for the
    engine's dialect, its typed parameters converted with SQLAlchemy's own bind processors, its errors raised as
    SQLAlchemy's (an `OperationalError` is a database that is down).

    Why not `Connection.execute`: for a statement that returns nothing, SQLAlchemy's connection, execution context
    and result cost more than the driver's call itself; this one runs on every survey answer
    (`conversations.repository.DraftRepository.save_answer`), where they were a tenth of the hop's CPU. What they
    do that matters here is kept: the pool's events, and after a lost connection the pool is replaced, so the
    other connections opened before it are not tried one failed hop at a time."""

    def __init__(self, engine: Engine, statement: TextClause) -> None:
        dialect = engine.dialect
        compiled = statement.compile(dialect=dialect)
        self.engine = engine
        self.sql = compiled.string
        self.positions = compiled.positiontup  # the parameters' order for a positional driver (SQLite), else None
        self.processors = {
            name: processor
            for name, bind in compiled.binds.items()
            if (processor := bind.type.bind_processor(dialect)) is not None
        }

    def run(self, parameters: dict[str, Any]) -> None:
        processors = self.processors
        values = {name: processors[name](v) if name in processors else v for name, v in parameters.items()}
        arguments: Any = [values[name] for name in self.positions] if self.positions else values
        dbapi_error = self.engine.dialect.loaded_dbapi.Error
        try:
            connection = self.engine.raw_connection()
        except dbapi_error as exc:  # the database is down: as `Engine.connect` would say it
            raise DBAPIError.instance(None, None, exc, dbapi_error) from exc
        try:
            cursor = connection.cursor()
            try:
                cursor.execute(self.sql, arguments)
            finally:
                cursor.close()
        except dbapi_error as exc:
            lost = self.engine.dialect.is_disconnect(exc, connection.dbapi_connection, None)
            if lost:
                connection.invalidate(exc)
                self.engine.dispose(close=False)
            raise DBAPIError.instance(self.sql, arguments, exc, dbapi_error, connection_invalidated=lost) from exc
        finally:
            connection.close()


def make_session_factory(engine: Engine) -> sessionmaker:  # type: ignore[type-arg]
    return sessionmaker(bind=engine, expire_on_commit=False)


def import_all_models() -> None:
    """Import every module that defines tables so `Base.metadata` is complete (Alembic, create_all)."""
    import accounts.models  # noqa: F401
    import api.models  # noqa: F401
    import consent.models  # noqa: F401
    import conversations.models  # noqa: F401
    import feeds.models  # noqa: F401
    import gateway.models  # noqa: F401
    import surveys.models  # noqa: F401
