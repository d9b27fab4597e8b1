"""Where conversations live between hops: the live state in Redis (with a TTL) and the durable survey draft in
the database.

The live state is small JSON keyed by the session (the provider's USSD session id, or one key per sender on SMS and
Telegram). The draft is the safety net: every answer is written to it the moment it is given, so Redis can expire
or fail and the client still resumes where they stopped.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import redis
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from conversations.models import ConversationDraft

STATE_PREFIX = "conv:"
LOCK_PREFIX = "conv-lock:"


@dataclass
class LiveSession:
    """What Redis holds for one session: the engine state plus the shell's bookkeeping for USSD replays."""

    state: dict[str, Any]
    consumed: int = 0  # characters of Africa's Talking's cumulative `text` already handled
    last_input_digest: str | None = None  # digest of the last hop's full text (never the text: it may hold a PIN)
    last_response: list[dict[str, Any]] | None = None  # the replies of the last hop, for a repeated hop
    caller: dict[str, Any] | None = None  # who is on the line, resolved on the session's first hop

    def to_json(self) -> str:
        return json.dumps(
            {
                "state": self.state,
                "consumed": self.consumed,
                "last_input_digest": self.last_input_digest,
                "last_response": self.last_response,
                "caller": self.caller,
            }
        )

    @classmethod
    def from_json(cls, raw: bytes | str | None) -> LiveSession | None:
        if not raw:
            return None
        try:
            data = json.loads(raw)
            return cls(
                state=dict(data.get("state") or {}),
                consumed=int(data.get("consumed") or 0),
                last_input_digest=data.get("last_input_digest"),
                last_response=data.get("last_response"),
                caller=data.get("caller") if isinstance(data.get("caller"), dict) else None,
            )
        except (ValueError, TypeError, AttributeError):
            return None


def input_digest(session_key: str, text: str) -> str:
    return hashlib.sha256(f"{session_key}\x00{text}".encode()).hexdigest()


class LiveSessionStore:
    def __init__(self, connection: redis.Redis, ttl_seconds: int) -> None:
        self.redis = connection
        self.ttl_seconds = ttl_seconds

    def load(self, session_key: str) -> LiveSession | None:
        return LiveSession.from_json(self.redis.get(STATE_PREFIX + session_key))

    def save(self, session_key: str, live: LiveSession) -> None:
        self.redis.set(STATE_PREFIX + session_key, live.to_json(), ex=self.ttl_seconds)

    def discard(self, session_key: str) -> None:
        self.redis.delete(STATE_PREFIX + session_key)

    def lock(self, session_key: str) -> Any:
        """A Redis lock per session, so the same hop arriving twice at once on two processes is handled once."""
        return self.redis.lock(LOCK_PREFIX + session_key, timeout=10, blocking_timeout=5)


class DraftRepository:
    """Durable drafts, one per (client, mode). Receives a session; never commits."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def find(self, client_id: int, mode: str, now: datetime) -> ConversationDraft | None:
        draft = self.session.scalar(
            select(ConversationDraft).where(ConversationDraft.client_id == client_id, ConversationDraft.mode == mode)
        )
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
        draft = self.session.scalar(
            select(ConversationDraft)
            .where(ConversationDraft.client_id == client_id, ConversationDraft.mode == mode)
            .with_for_update()
        )
        expires_at = now + timedelta(days=ttl_days)
        if draft is None or draft.scorecard_id != scorecard_id or _expired(draft, now):
            if draft is not None:
                self.session.delete(draft)
                self.session.flush()
            draft = ConversationDraft(
                client_id=client_id,
                mode=mode,
                scorecard_id=scorecard_id,
                answers={},
                started_at=now,
                officer_id=officer_id,
                expires_at=expires_at,
            )
            self.session.add(draft)
        answers = dict(draft.answers or {})
        answers[str(question_index)] = option_position
        draft.answers = answers  # a new dict, so the JSON column is seen as changed
        draft.officer_id = officer_id
        draft.updated_at = now
        draft.expires_at = expires_at
        self.session.flush()

    def discard(self, client_id: int, mode: str) -> None:
        self.session.execute(
            delete(ConversationDraft).where(ConversationDraft.client_id == client_id, ConversationDraft.mode == mode)
        )


def _expired(draft: ConversationDraft, now: datetime) -> bool:
    expires_at = draft.expires_at if draft.expires_at.tzinfo else draft.expires_at.replace(tzinfo=now.tzinfo)
    return expires_at <= now
