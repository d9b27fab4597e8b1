"""The consent ledger: grant, revoke, re-grant, per-lender overrides, idempotent provider messages, paper consent
through the CLI, and append-only storage (ORM guard everywhere, PostgreSQL trigger when on PostgreSQL)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import DBAPIError

from accounts.models import Client
from api.keys import create_key
from bootstrap import Services
from consent import service
from consent.cli import history_command, record_command
from consent.keywords import parse_consent_reply
from consent.models import ConsentEvent, LedgerIsAppendOnly
from gateway.encoding import fits_ussd
from locales import SUPPORTED
from tests.factories import NOW, make_client, make_staff


def _client(services: Services, **kwargs: object) -> int:
    with services.transaction() as session:
        return make_client(session, **kwargs).id


def _record(services: Services, client_id: int, granted: bool, lender: str | None = None, **kwargs: object) -> None:
    with services.transaction() as session:
        service.record(
            session,
            client_id,
            granted=granted,
            lender=lender,
            text_version="v1",
            language="en",
            channel=str(kwargs.pop("channel", "at-ussd")),
            now=NOW,
            **kwargs,
        )


def _sharing(services: Services, client_id: int, lender: str | None = None) -> bool | None:
    with services.transaction() as session:
        return service.is_sharing(session, client_id, lender=lender)


def _sharing_ids(services: Services, lender: str | None = None) -> set[int]:
    with services.transaction() as session:
        return set(session.scalars(service.sharing_client_ids(lender=lender)))


def test_never_asked_is_neither_grant_nor_refusal(services: Services) -> None:
    client_id = _client(services)
    assert _sharing(services, client_id) is None
    assert _sharing_ids(services) == set()


def test_grant_revoke_and_grant_again_follow_the_latest_event(services: Services) -> None:
    client_id = _client(services)
    _record(services, client_id, True)
    assert _sharing(services, client_id) is True
    _record(services, client_id, False)
    assert _sharing(services, client_id) is False
    assert _sharing_ids(services) == set()
    _record(services, client_id, True)
    assert _sharing(services, client_id) is True
    assert _sharing_ids(services) == {client_id}
    with services.transaction() as session:
        assert [event.granted for event in service.history(session, client_id)] == [True, False, True]


def test_grant_for_any_lender_covers_every_lender_until_that_lender_is_revoked(services: Services) -> None:
    client_id = _client(services)
    _record(services, client_id, True)
    assert _sharing(services, client_id, lender="acme") is True
    _record(services, client_id, False, lender="acme")
    assert _sharing(services, client_id, lender="acme") is False
    assert _sharing(services, client_id, lender="other") is True
    assert _sharing_ids(services, lender="acme") == set()
    assert _sharing_ids(services, lender="other") == {client_id}


def test_a_later_revoke_for_any_lender_overrides_a_per_lender_grant(services: Services) -> None:
    client_id = _client(services)
    _record(services, client_id, True, lender="acme")
    assert _sharing(services, client_id, lender="acme") is True
    assert _sharing(services, client_id) is None  # a per-lender grant says nothing about lenders in general
    _record(services, client_id, False)
    assert _sharing(services, client_id, lender="acme") is False


def test_a_provider_message_is_recorded_once(services: Services) -> None:
    client_id = _client(services)
    _record(services, client_id, True, provider_message_id="ATXid_1")
    _record(services, client_id, True, provider_message_id="ATXid_1")
    with services.transaction() as session:
        assert len(service.history(session, client_id)) == 1


def test_paper_consent_needs_an_officer_and_a_known_client(services: Services) -> None:
    client_id = _client(services)
    with pytest.raises(service.ConsentError, match="officer"):
        _record(services, client_id, True, channel="paper")
    with pytest.raises(service.ConsentError, match="no client"):
        _record(services, client_id + 999, True)


def test_consent_leaves_the_message_opt_out_alone(services: Services) -> None:
    client_id = _client(services)
    _record(services, client_id, False)
    with services.transaction() as session:
        assert session.get(Client, client_id).message_opt_out is False


def test_orm_refuses_to_change_or_delete_an_event(services: Services) -> None:
    client_id = _client(services)
    _record(services, client_id, True)
    with pytest.raises(LedgerIsAppendOnly), services.transaction() as session:
        session.scalars(select(ConsentEvent)).one().granted = False
    with pytest.raises(LedgerIsAppendOnly), services.transaction() as session:
        session.delete(session.scalars(select(ConsentEvent)).one())
    with pytest.raises(LedgerIsAppendOnly), services.transaction() as session:
        session.execute(update(ConsentEvent).values(granted=False))
    with pytest.raises(LedgerIsAppendOnly), services.transaction() as session:
        session.execute(delete(ConsentEvent))
    assert _sharing(services, client_id) is True


@pytest.mark.parametrize("statement", ["UPDATE consent_events SET granted = false", "DELETE FROM consent_events"])
def test_postgresql_refuses_to_change_the_ledger_even_without_the_orm(services: Services, statement: str) -> None:
    if services.engine.dialect.name != "postgresql":
        pytest.skip("the append-only trigger exists only on PostgreSQL (SQLite relies on the ORM guard)")
    client_id = _client(services)
    _record(services, client_id, True)
    with pytest.raises(DBAPIError, match="append-only"), services.engine.begin() as connection:
        connection.execute(text(statement))
    assert _sharing(services, client_id) is True


@pytest.mark.parametrize("language", SUPPORTED)
def test_consent_text_fits_one_ussd_screen_in_every_language(language: str) -> None:
    wording = service.consent_text(language)
    assert wording.language == language
    assert wording.version == "v1"
    assert fits_ussd(wording.text), wording.text
    assert fits_ussd(wording.what_is_shared), wording.what_is_shared


def test_unknown_language_falls_back_to_english() -> None:
    assert service.consent_text("zz").text == service.consent_text("en").text


@pytest.mark.parametrize(
    ("reply", "meaning"),
    [
        ("YES", True),
        ("yes please", True),
        ("Ndio", True),
        ("oui", True),
        ("Sí", True),
        ("si", True),
        ("हाँ", True),
        ("نعم", True),
        ("no", False),
        ("HAPANA", False),
        ("Non.", False),
        ("नहीं", False),
        ("لا", False),
        ("yes no", None),
        ("Si sawa", None),  # Swahili "not OK": "si" is Spanish yes only as the whole reply
        ("si kweli", None),
        ("maybe", None),
        ("", None),
    ],
)
def test_consent_replies_are_understood_in_every_language(reply: str, meaning: bool | None) -> None:
    assert parse_consent_reply(reply) is meaning


def test_cli_records_paper_consent_and_shows_history(services: Services, runner) -> None:
    with services.transaction() as session:
        make_staff(session, external_id="S001")
        client_id = make_client(session, external_id="C100", phones=["+254700000100"], language="sw").id
        create_key(session, scope="lender", lender="acme", now=NOW)

    granted = runner.invoke(record_command, ["C100", "--grant", "--officer", "S001"])
    assert granted.exit_code == 0, granted.output
    revoked = runner.invoke(record_command, ["0700000100", "--revoke", "--officer", "S001", "--lender", "acme"])
    assert revoked.exit_code == 0, revoked.output

    assert _sharing(services, client_id) is True
    assert _sharing(services, client_id, lender="acme") is False
    shown = runner.invoke(history_command, ["C100", "--json"])
    assert shown.exit_code == 0, repr(shown.exception)
    events = json.loads(shown.output)["events"]
    assert [(e["granted"], e["lender"], e["channel"], e["officer"], e["language"]) for e in events] == [
        (True, None, "paper", "S001", "sw"),
        (False, "acme", "paper", "S001", "sw"),
    ]
    table = runner.invoke(history_command, ["C100"])
    assert "revoke" in table.output and "acme" in table.output


def test_cli_refuses_unknown_officer_and_missing_decision(services: Services, runner) -> None:
    with services.transaction() as session:
        make_client(session, external_id="C101")
    unknown = runner.invoke(record_command, ["C101", "--grant", "--officer", "NOPE"])
    assert unknown.exit_code != 0 and "NOPE" in unknown.output
    undecided = runner.invoke(record_command, ["C101", "--officer", "NOPE"])
    assert undecided.exit_code != 0 and "--grant or --revoke" in undecided.output


def test_cli_says_a_shared_phone_belongs_to_several_clients(services: Services, runner) -> None:
    shared = "+254700000001"  # the README's demo phone, on C0001 and C0200
    with services.transaction() as session:
        make_staff(session, external_id="S001")
        make_client(session, external_id="C0001", phones=[shared])
        make_client(session, external_id="C0200", phones=[shared])

    for result in (
        runner.invoke(history_command, [shared]),
        runner.invoke(record_command, [shared, "--grant", "--officer", "S001"]),
    ):
        assert result.exit_code == 1
        assert "several clients share this phone (C0001, C0200); give the external id instead" in result.output
    with services.transaction() as session:
        assert session.scalars(select(ConsentEvent)).all() == []
    assert runner.invoke(record_command, ["C0200", "--grant", "--officer", "S001"]).exit_code == 0


def test_cli_refuses_a_lender_longer_than_the_ledger_holds(services: Services, runner) -> None:
    longest = ConsentEvent.__table__.c.lender.type.length
    with services.transaction() as session:
        make_staff(session, external_id="S001")
        make_client(session, external_id="C102")
        create_key(session, scope="lender", lender="l" * longest, now=NOW)

    too_long = runner.invoke(record_command, ["C102", "--grant", "--officer", "S001", "--lender", "L" * (longest + 1)])
    assert too_long.exit_code == 2 and isinstance(too_long.exception, SystemExit)
    assert too_long.output.splitlines()[-1] == (
        f"Error: Invalid value for '--lender': at most {longest} characters, not {longest + 1}"
    )
    with services.transaction() as session:
        assert session.scalars(select(ConsentEvent)).all() == []
    fits = runner.invoke(record_command, ["C102", "--grant", "--officer", "S001", "--lender", "L" * longest])
    assert fits.exit_code == 0, fits.output


def test_paper_consent_for_a_lender_is_kept_under_the_keys_spelling_and_refused_for_an_unknown_one(
    services: Services, runner
) -> None:
    with services.transaction() as session:
        make_staff(session, external_id="S001")
        client_id = make_client(session, external_id="C103").id
        create_key(session, scope="lender", lender="kiva", now=NOW)
    assert runner.invoke(record_command, ["C103", "--grant", "--officer", "S001"]).exit_code == 0
    revoked = runner.invoke(record_command, ["C103", "--revoke", "--officer", "S001", "--lender", " Kiva "])
    assert revoked.exit_code == 0, revoked.output
    assert _sharing(services, client_id, lender="kiva") is False  # the key's lender no longer sees the client
    typo = runner.invoke(record_command, ["C103", "--revoke", "--officer", "S001", "--lender", "kiwa"])
    assert typo.exit_code != 0
    assert "no API key is for lender 'kiwa' (lenders with keys: kiva); create the key first" in typo.output
    with services.transaction() as session:
        assert [event.lender for event in service.history(session, client_id)] == [None, "kiva"]


def test_paper_consent_is_recorded_in_the_language_the_client_was_read(services: Services) -> None:
    from tests.factories import make_office

    with services.transaction() as session:
        office = make_office(session, default_language="sw")
        make_staff(session, external_id="S001", office=office)
        client = make_client(session, office=office)  # no language of their own: their office's Swahili
        assert service.record_paper(session, client, granted=True, officer="S001", now=NOW).language == "sw"
        assert (
            service.record_paper(session, client, granted=True, officer="S001", language="fr", now=NOW).language == "fr"
        )
        with pytest.raises(service.ConsentError, match="no consent text in 'rw'; there is one in ar, en, es, fr"):
            service.record_paper(session, client, granted=True, officer="S001", language="rw", now=NOW)
