"""`db.DriverStatement`, the survey answer's write past SQLAlchemy's connection: its parameters are converted as
SQLAlchemy converts them, and its failures are SQLAlchemy's errors, which the conversation service tells apart
(a database that is down ends a USSD session with "your answers are saved")."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import JSON, DateTime, bindparam, create_engine, select, text
from sqlalchemy.exc import IntegrityError, OperationalError

from conversations.models import ConversationDraft
from db import DriverStatement, as_utc
from tests.factories import make_client

INSERT_DRAFT = text(
    "INSERT INTO conversation_drafts (client_id, mode, scorecard_id, answers, started_at, updated_at, expires_at) "
    "VALUES (:client_id, 'self', 'KEN-2024', :answers, :at, :at, :at)"
).bindparams(bindparam("answers", type_=JSON), bindparam("at", type_=DateTime(timezone=True)))


def test_typed_parameters_are_stored_as_sqlalchemy_stores_them(services):
    with services.transaction() as session:
        client_id = make_client(session, external_id="C0009", name="Amina Otieno", phones=["+254700000009"]).id
    at = datetime(2026, 12, 2, 9, 30, 15, 123456, tzinfo=UTC)
    DriverStatement(services.autocommit_engine, INSERT_DRAFT).run(
        {"client_id": client_id, "answers": {"0": 3}, "at": at}
    )
    with services.transaction() as session:
        draft = session.scalars(select(ConversationDraft)).one()
        assert draft.answers == {"0": 3}
        assert as_utc(draft.expires_at) == at


def test_a_refused_write_is_sqlalchemys_integrity_error(services):
    with pytest.raises(IntegrityError):  # no client 999999: the foreign key refuses it
        DriverStatement(services.autocommit_engine, INSERT_DRAFT).run(
            {"client_id": 999999, "answers": {}, "at": datetime.now(UTC)}
        )


def test_a_database_that_cannot_be_reached_is_sqlalchemys_operational_error(tmp_path):
    unreachable = create_engine(f"sqlite:///{tmp_path}/missing-folder/db.sqlite", isolation_level="AUTOCOMMIT")
    with pytest.raises(OperationalError):
        DriverStatement(unreachable, text("SELECT 1")).run({})
