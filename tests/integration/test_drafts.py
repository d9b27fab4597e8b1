"""The durable survey draft: each answer is added in one upsert; a draft for another scorecard or past its expiry
starts afresh. Runs on SQLite and on PostgreSQL (the merge is JSON concatenation there, json_patch on SQLite)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from conversations.models import ConversationDraft
from conversations.repository import DraftRepository
from tests.factories import make_client

NOW = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)


def _answer(session, client_id: int, question: int, option: int, *, scorecard: str = "KEN-2024", now=NOW) -> None:  # type: ignore[no-untyped-def]
    DraftRepository(session).save_answer(
        client_id=client_id,
        mode="self",
        scorecard_id=scorecard,
        question_index=question,
        option_position=option,
        officer_id=None,
        now=now,
        ttl_days=7,
    )


def _draft(services, client_id: int) -> ConversationDraft:  # type: ignore[no-untyped-def]
    with services.transaction() as session:
        draft: ConversationDraft = session.scalars(
            select(ConversationDraft).where(ConversationDraft.client_id == client_id)
        ).one()
        return draft


def test_answers_accumulate_and_a_changed_answer_replaces_the_old_one(services):  # type: ignore[no-untyped-def]
    with services.transaction() as session:
        client_id = make_client(session).id
    for question, option in ((0, 3), (1, 2), (0, 1)):
        with services.transaction() as session:
            _answer(session, client_id, question, option, now=NOW + timedelta(minutes=question))
    draft = _draft(services, client_id)
    assert draft.answers == {"0": 1, "1": 2}
    assert draft.started_at.replace(tzinfo=UTC) == NOW
    assert draft.expires_at.replace(tzinfo=UTC) == NOW + timedelta(days=7, minutes=0)


def test_a_draft_for_another_scorecard_starts_afresh(services):  # type: ignore[no-untyped-def]
    with services.transaction() as session:
        client_id = make_client(session).id
        _answer(session, client_id, 0, 3, scorecard="KEN-2008")
        _answer(session, client_id, 1, 2, scorecard="KEN-2008")
    with services.transaction() as session:
        _answer(session, client_id, 4, 1, now=NOW + timedelta(hours=1))
    draft = _draft(services, client_id)
    assert (draft.scorecard_id, draft.answers) == ("KEN-2024", {"4": 1})
    assert draft.started_at.replace(tzinfo=UTC) == NOW + timedelta(hours=1)


def test_an_expired_draft_starts_afresh_and_find_ignores_it(services):  # type: ignore[no-untyped-def]
    with services.transaction() as session:
        client_id = make_client(session).id
        _answer(session, client_id, 0, 3)
    later = NOW + timedelta(days=8)
    with services.transaction() as session:
        assert DraftRepository(session).find(client_id, "self", later) is None
        _answer(session, client_id, 2, 1, now=later)
        assert DraftRepository(session).find(client_id, "self", later).answers == {"2": 1}  # type: ignore[union-attr]
    assert _draft(services, client_id).answers == {"2": 1}
