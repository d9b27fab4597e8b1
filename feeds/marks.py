"""Tables of marks: rows naming what is out of date (a client's facts, a profile's sums), each taken, once, by
whoever brings it up to date. The rule that makes them safe under concurrency is in `feeds/stale.py`."""

from __future__ import annotations

from functools import cache

from sqlalchemy import TextClause, text
from sqlalchemy.orm import Session

# Takes up to :batch marks, lowest first, skipping those that a transaction still writing holds.
_TAKE = {
    "postgresql": """
        DELETE FROM {table} WHERE {column} IN (
            SELECT {column} FROM {table} ORDER BY {column} LIMIT :batch FOR UPDATE SKIP LOCKED
        ) RETURNING {column}
    """,
    "sqlite": """
        DELETE FROM {table} WHERE {column} IN (
            SELECT {column} FROM {table} ORDER BY {column} LIMIT :batch
        ) RETURNING {column}
    """,
}


def take(session: Session, table: str, column: str, batch: int) -> list[int]:
    """Remove up to `batch` marks from `table` and return them, in the caller's transaction."""
    statement = _take_statement(session.get_bind().dialect.name, table, column)
    return list(session.execute(statement, {"batch": batch}).scalars())


@cache
def _take_statement(dialect: str, table: str, column: str) -> TextClause:
    return text(_TAKE[dialect].format(table=table, column=column))
