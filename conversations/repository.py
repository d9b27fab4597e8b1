"""Where conversations live between hops: the live state in Redis (with a TTL) and the durable survey draft in
the database.

The live state is small JSON keyed by the session (the provider's USSD session id, or one key per sender on SMS and
Telegram). The draft is the safety net: every answer is written to it the moment it is given, so Redis can expire
or fail and the client still resumes where they stopped.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import weakref
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

import orjson
import redis
from sqlalchemy import JSON, DateTime, TextClause, bindparam, delete, select, text
from sqlalchemy.engine import Engine, Row
from sqlalchemy.orm import Session

from conversations.models import ConversationDraft
from db import DriverStatement, as_utc

STATE_PREFIX = "conv:"
LOCK_PREFIX = "conv-lock:"

logger = logging.getLogger(__name__)


@dataclass
class LiveSession:
    """What Redis holds for one session: the engine state plus the shell's bookkeeping for USSD replays."""

    state: dict[str, Any]
    consumed: int = 0  # characters of Africa's Talking's cumulative `text` already handled
    last_input_digest: str | None = None  # digest of the last hop's full text (never the text: it may hold a PIN)
    last_response: list[dict[str, Any]] | None = None  # the replies of the last hop, for a repeated hop
    caller: dict[str, Any] | None = None  # who is on the line, resolved on the session's first hop
    ppi: dict[str, Any] | None = None  # the PPI settings read on the session's first hop (USSD)
    people: dict[str, Any] | None = None  # the caller's clients' first names and languages, read on first use (USSD)
    touched_at: float | None = None  # when the last message was handled (Unix seconds; SMS and Telegram)
    buttons: int = 0  # Telegram: the stamp on the latest message's buttons (a press on older ones is refused)

    def to_json(self) -> bytes:
        """The record as JSON, written with orjson: the standard library's encoder and decoder were a tenth of the
        CPU of a survey answer's hop (bench/README.md)."""
        return orjson.dumps(
            {
                "state": self.state,
                "consumed": self.consumed,
                "last_input_digest": self.last_input_digest,
                "last_response": self.last_response,
                "caller": self.caller,
                "ppi": self.ppi,
                "people": self.people,
                "touched_at": self.touched_at,
                "buttons": self.buttons,
            }
        )

    @classmethod
    def from_json(cls, raw: bytes | str | None) -> LiveSession | None:
        if not raw:
            return None
        try:
            data = orjson.loads(raw)
            return cls(
                state=dict(data.get("state") or {}),
                consumed=int(data.get("consumed") or 0),
                last_input_digest=data.get("last_input_digest"),
                last_response=data.get("last_response"),
                caller=data.get("caller") if isinstance(data.get("caller"), dict) else None,
                ppi=data.get("ppi") if isinstance(data.get("ppi"), dict) else None,
                people=data.get("people") if isinstance(data.get("people"), dict) else None,
                touched_at=float(data["touched_at"]) if data.get("touched_at") is not None else None,
                buttons=int(data.get("buttons") or 0),
            )
        except (ValueError, TypeError, AttributeError):
            return None


def input_digest(session_key: str, text: str) -> str:
    return hashlib.sha256(f"{session_key}\x00{text}".encode()).hexdigest()


# Counts the hop against the sender's rate key (when ARGV[3] > 0), tries the session lock, and reads the state only
# when the lock was taken: {count or false, 1 or 0, state or false}.
_ACQUIRE = """
local count = false
if tonumber(ARGV[3]) > 0 then
  count = redis.call('incr', KEYS[3])
  redis.call('expire', KEYS[3], ARGV[3])
end
if not redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {count, 0, false} end
return {count, 1, redis.call('get', KEYS[2])}
"""
# Writes the hop's live state (or deletes it when ARGV[2] is empty) and releases the lock, only while the lock still
# holds this hop's token: a hop that outlived its lock must not overwrite the state of the hop that took it over.
_SAVE_AND_RELEASE = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then redis.call('del', KEYS[2]) else redis.call('set', KEYS[2], ARGV[2], 'EX', ARGV[3]) end
redis.call('del', KEYS[1])
return 1
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class _LuaScript:
    """A server-side script called by its SHA1, loaded again when the server does not know it (a restart, a
    failover). This is what redis-py's `Script` does, without its per-call wrapping (a pipeline check, an import,
    the argument deprecation shim): that wrapping was a third of each call's client-side work, on two calls a hop."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()  # noqa: S324 - the name Redis gives a script

    def __call__(self, connection: redis.Redis, keys: list[str], args: list[Any]) -> Any:
        try:
            return connection.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            connection.script_load(self.source)
            return connection.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)


_ACQUIRE_SCRIPT, _SAVE_AND_RELEASE_SCRIPT, _RELEASE_SCRIPT = (
    _LuaScript(source) for source in (_ACQUIRE, _SAVE_AND_RELEASE, _RELEASE)
)


@dataclass
class HeldSession:
    """One hop's hold on a session: its lock token, the state it loaded, and what it will write back on release."""

    session_key: str
    token: str
    locked: bool
    live: LiveSession | None = None
    rate_count: int | None = None  # the sender's requests in this rate window, this one included
    pending: bytes | None = None  # JSON to save on release; b"" deletes the state; None leaves it untouched

    def keep(self, live: LiveSession) -> None:
        self.pending = live.to_json()

    def discard(self) -> None:
        self.pending = b""


class LiveSessionStore:
    """The live state behind a per-session Redis lock, so the same hop arriving twice at once on two processes is
    handled once. A hop costs two round trips when nobody else holds the session: one to count the sender's rate,
    take the lock and load the state, one to save the state and release the lock."""

    LOCK_TIMEOUT_SECONDS = 10
    LOCK_WAIT_SECONDS = 5
    RATE_KEY_SECONDS = 120  # a rate key names its minute, so refreshing its expiry never extends a window

    def __init__(self, connection: redis.Redis, ttl_seconds: int) -> None:
        self.redis = connection
        self.ttl_seconds = ttl_seconds

    def load(self, session_key: str) -> LiveSession | None:
        return LiveSession.from_json(self.redis.get(STATE_PREFIX + session_key))

    def acquire(self, session_key: str, *, rate_key: str | None = None) -> HeldSession:
        """Count the request against `rate_key`, try the lock and read the state, in one round trip (one script: a
        pipeline of four commands cost twice the client-side work). The state is kept only when the lock was taken;
        otherwise `wait` takes the lock and reads it again."""
        held = HeldSession(session_key, secrets.token_hex(16), locked=False)
        keys = [LOCK_PREFIX + session_key, STATE_PREFIX + session_key, rate_key or ""]
        args = [held.token, self.LOCK_TIMEOUT_SECONDS * 1000, self.RATE_KEY_SECONDS if rate_key else 0]
        count, locked, raw_state = _ACQUIRE_SCRIPT(self.redis, keys, args)
        held.rate_count = None if rate_key is None else int(count)
        held.locked = bool(locked)
        held.live = LiveSession.from_json(raw_state) if held.locked else None
        return held

    def wait(self, held: HeldSession) -> None:
        """Block until the lock is ours (another hop of this session is running), then read the state."""
        if held.locked:
            return
        lock = self.redis.lock(
            LOCK_PREFIX + held.session_key, timeout=self.LOCK_TIMEOUT_SECONDS, blocking_timeout=self.LOCK_WAIT_SECONDS
        )
        if not lock.acquire(token=held.token):
            raise redis.exceptions.LockError("the session is busy")
        held.locked = True
        held.live = self.load(held.session_key)

    def release(self, held: HeldSession) -> None:
        """Write what the hop asked to keep, and free the lock, in one round trip; nothing when the lock was lost."""
        if not held.locked:
            return
        keys = [LOCK_PREFIX + held.session_key, STATE_PREFIX + held.session_key]
        if held.pending is None:
            _RELEASE_SCRIPT(self.redis, keys[:1], [held.token])
        elif not _SAVE_AND_RELEASE_SCRIPT(self.redis, keys, [held.token, held.pending, self.ttl_seconds]):
            logger.warning("a conversation hop outlived its session lock; its state was not saved")
        held.locked = False


# Built once (a draft is looked up on the first hops of every session). The columns a draft is shown and resumed
# with, as a row: `save_answer` writes with a statement, behind any ORM session's back, so no object would be current.
_FIND_DRAFT = select(
    ConversationDraft.answers,
    ConversationDraft.scorecard_id,
    ConversationDraft.started_at,
    ConversationDraft.expires_at,
).where(ConversationDraft.client_id == bindparam("client_id"), ConversationDraft.mode == bindparam("mode"))

# Built once too, and without the ORM's matching of the deleted row against the objects the session holds (this
# repository forgets the draft it found itself).
_DISCARD_DRAFT = (
    delete(ConversationDraft)
    .where(ConversationDraft.client_id == bindparam("client_id"), ConversationDraft.mode == bindparam("mode"))
    .execution_options(synchronize_session=False)
)


class DraftRepository:
    """Durable drafts, one per (client, mode). Receives a session; never commits. Made once per hop: a draft read
    is remembered until this repository writes that draft, because one hop may build the engine's context several
    times (a PIN check then a balance read is three rounds)."""

    def __init__(self, session: Session, *, autocommit: Engine | None = None) -> None:
        self.session = session
        self.autocommit = autocommit
        self._found: dict[tuple[int, str], Row[Any] | None] = {}

    def find(self, client_id: int, mode: str, now: datetime) -> Row[Any] | None:
        """The draft's answers, scorecard_id, started_at and expires_at, or None (none, or expired). Read in autocommit
        when the hop's transaction has not begun (the survey choice: its only statement), so that hop costs one round
        trip, not BEGIN, SELECT and COMMIT; inside the transaction otherwise, so it sees the hop's own writes."""
        key = (client_id, mode)
        if key not in self._found:
            parameters = {"client_id": client_id, "mode": mode}
            engine = self._on_its_own()
            if engine is None:
                self._found[key] = self.session.execute(_FIND_DRAFT, parameters).first()
            else:
                with engine.connect() as connection:
                    self._found[key] = connection.execute(_FIND_DRAFT, parameters).first()
        draft = self._found[key]
        return None if draft is None or _expired(draft, now) else draft

    def save_answer(
        self,
        *,
        client_id: int,
        mode: str,
        scorecard_id: str,
        question_index: int,
        option_position: int,
        officer_id: int | None,
        now: datetime,
        ttl_days: int,
    ) -> None:
        """Add one answer to the client's draft in one statement (an upsert: this runs on every survey hop). A draft
        for another scorecard, or one past its expiry, is started afresh with this answer.

        When nothing else ran in the hop's transaction yet (a survey hop: its state and the caller come from Redis),
        the upsert runs on its own in autocommit, on the driver's connection (`db.DriverStatement`): the answer is
        durable the moment it is given, as one round trip instead of BEGIN, upsert and COMMIT. Otherwise it joins the
        transaction (a discarded draft and a new first answer, say, commit together)."""
        parameters = {
            "client_id": client_id,
            "mode": mode,
            "scorecard_id": scorecard_id,
            "answers": {str(question_index): option_position},
            "now": now,
            "officer_id": officer_id,
            "expires_at": now + timedelta(days=ttl_days),
        }
        engine = self._on_its_own()
        if engine is None:
            self.session.execute(_upsert_answer(self.session.get_bind().dialect.name), parameters)
        else:
            _driver_upsert(engine).run(parameters)
        self._found.pop((client_id, mode), None)

    def _on_its_own(self) -> Engine | None:
        """The autocommit engine to run a read or write on its own, or None when it joins the hop's transaction:
        the transaction has begun (so it sees, or commits with, the hop's other writes), or there is no such engine."""
        return None if self.session.in_transaction() else self.autocommit

    def discard(self, client_id: int, mode: str) -> None:
        self.session.execute(_DISCARD_DRAFT, {"client_id": client_id, "mode": mode})
        self._found[(client_id, mode)] = None


# Written as SQL text, not with the dialects' `insert().on_conflict_do_update()`: SQLAlchemy does not cache the
# compiled form of those, and compiling this statement on every survey hop cost more than running it.
_UPSERT_ANSWER = """
INSERT INTO conversation_drafts AS stored
    (client_id, mode, scorecard_id, answers, started_at, updated_at, officer_id, expires_at)
VALUES (:client_id, :mode, :scorecard_id, :answers, :now, :now, :officer_id, :expires_at)
ON CONFLICT (client_id, mode) DO UPDATE SET
    answers = CASE WHEN {still_valid} THEN {merged} ELSE excluded.answers END,
    started_at = CASE WHEN {still_valid} THEN stored.started_at ELSE excluded.started_at END,
    scorecard_id = excluded.scorecard_id,
    officer_id = excluded.officer_id,
    updated_at = excluded.updated_at,
    expires_at = excluded.expires_at
"""
_STILL_VALID = "stored.scorecard_id = excluded.scorecard_id AND stored.expires_at > excluded.updated_at"
# The stored answers with the added ones on top (the column is JSON, not JSONB, on PostgreSQL).
_MERGED_ANSWERS = {
    "postgresql": "CAST(CAST(stored.answers AS JSONB) || CAST(excluded.answers AS JSONB) AS JSON)",
    "sqlite": "json_patch(stored.answers, excluded.answers)",
}


@cache
def _upsert_answer(dialect: str) -> TextClause:
    sql = _UPSERT_ANSWER.format(still_valid=_STILL_VALID, merged=_MERGED_ANSWERS[dialect])
    return text(sql).bindparams(
        bindparam("answers", type_=JSON),
        bindparam("now", type_=DateTime(timezone=True)),
        bindparam("expires_at", type_=DateTime(timezone=True)),
    )


_DRIVER_UPSERTS: weakref.WeakKeyDictionary[Engine, DriverStatement] = weakref.WeakKeyDictionary()


def _driver_upsert(engine: Engine) -> DriverStatement:
    """The upsert compiled for `engine` (an autocommit engine), once per engine."""
    statement = _DRIVER_UPSERTS.get(engine)
    if statement is None:
        statement = _DRIVER_UPSERTS[engine] = DriverStatement(engine, _upsert_answer(engine.dialect.name))
    return statement


def _expired(draft: Row[Any], now: datetime) -> bool:
    return as_utc(draft.expires_at) <= now
