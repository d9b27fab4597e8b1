"""The survey lifecycle as an MFI sees it: settings, recording, back-dating, editing, deleting and poverty status."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from accounts.models import Client
from scoring.loader import load_scorecard
from scoring.scorecard import parse_bands, score
from surveys import service
from surveys.models import SurveyAnswer, SurveyLineResult, SurveyResponse
from surveys.service import SurveyError
from tests.conftest import TEST_DATABASE_URL
from tests.factories import NOW, configure_ppi, make_client, make_office, make_staff

BANDS = "0-29:Very poor,30-59:Poor,60-100:Better off"
# KEN-2024 (10 questions): scores on the absolute poverty line.
BETTER_OFF = [1] * 10  # absolute line score 66
VERY_POOR = [47, 18, 9, 2, 2, 2, 2, 2, 2, 2]  # absolute line score 25


@pytest.fixture
def session(services):
    with services.transaction() as session:
        yield session


def record(session, client, answers, *, on=date(2024, 6, 1), **kw):
    kw.setdefault("mode", "officer")
    kw.setdefault("channel", "cli")
    kw.setdefault("officer_id", None)
    kw.setdefault("now", NOW)
    return service.create_survey(session, client.id, answers, date_collected=on, **kw)


def test_a_survey_stores_answers_every_line_headline_and_band(session):
    configure_ppi(session, bands=BANDS)
    client = make_client(session)

    survey = record(session, client, VERY_POOR)

    assert survey.scorecard_id == "KEN-2024"
    assert (survey.headline_line, survey.headline_score, survey.band) == ("absolute-poverty-line", 25, "Very poor")
    assert 0.6 < survey.headline_likelihood < 0.65
    assert [a.option_position for a in survey.answers] == VERY_POOR
    assert len(survey.line_results) == 12
    assert (client.poverty_survey_id, client.poverty_band, client.poverty_date) == (
        survey.id,
        "Very poor",
        date(2024, 6, 1),
    )


def test_each_lines_score_likelihood_and_the_clients_status_are_stored_as_scored(session):
    configure_ppi(session, bands=BANDS)
    client = make_client(session)
    answers = [47, 18, 9, 2, 2, 2, 2, 2, 2, 2]
    expected = score(load_scorecard("KEN-2024"), answers)

    survey_id = record(session, client, answers).id
    session.expire_all()

    stored = session.scalars(select(SurveyLineResult).where(SurveyLineResult.survey_id == survey_id)).all()
    assert {(r.line_slug, r.score, r.likelihood) for r in stored} == {
        (line.slug, line.score, line.likelihood) for line in expected.lines
    }
    numbered = session.execute(
        select(SurveyAnswer.question_number, SurveyAnswer.option_position).where(SurveyAnswer.survey_id == survey_id)
    )
    assert sorted(numbered) == list(enumerate(answers, start=1))
    stored_client = session.get(Client, client.id)  # expired above: read again from the database
    assert (stored_client.poverty_survey_id, stored_client.poverty_date) == (survey_id, date(2024, 6, 1))


def test_without_bands_no_band_is_set(session):
    configure_ppi(session, bands=None)
    client = make_client(session)

    survey = record(session, client, BETTER_OFF)

    assert survey.band is None and survey.headline_score == 66
    assert service.client_status(session, client).headline_score == 66


def test_a_back_dated_survey_older_than_the_latest_does_not_change_the_status(session):
    configure_ppi(session, bands=BANDS)
    client = make_client(session)
    latest = record(session, client, BETTER_OFF, on=date(2024, 6, 1))

    record(session, client, VERY_POOR, on=date(2023, 1, 10))

    status = service.client_status(session, client)
    assert (status.survey_id, status.band, status.date_collected) == (latest.id, "Better off", date(2024, 6, 1))
    assert [s.date_collected for s in service.client_surveys(session, client.id)] == [
        date(2023, 1, 10),
        date(2024, 6, 1),
    ]


def test_deleting_the_latest_survey_reverts_to_the_previous_one(session):
    configure_ppi(session, bands=BANDS)
    client = make_client(session)
    previous = record(session, client, VERY_POOR, on=date(2024, 1, 5))
    latest = record(session, client, BETTER_OFF, on=date(2024, 6, 1))

    service.delete_survey(session, latest.id, now=NOW)

    assert (client.poverty_survey_id, client.poverty_band, client.poverty_date) == (
        previous.id,
        "Very poor",
        date(2024, 1, 5),
    )
    assert session.scalar(select(func.count()).select_from(SurveyLineResult)) == 12


def test_same_day_surveys_take_the_last_recorded_and_deleting_it_falls_back_to_the_other(session):
    configure_ppi(session, bands=BANDS)
    client = make_client(session)
    first = record(session, client, VERY_POOR)
    second = record(session, client, BETTER_OFF)
    assert client.poverty_survey_id == second.id

    service.delete_survey(session, second.id, now=NOW)

    assert client.poverty_survey_id == first.id


def test_deleting_the_only_survey_clears_the_status_and_its_rows(session):
    configure_ppi(session, bands=BANDS)
    client = make_client(session)
    survey = record(session, client, VERY_POOR)

    service.delete_survey(session, survey.id, now=NOW)

    assert service.client_status(session, client) is None
    assert (client.poverty_survey_id, client.poverty_band, client.poverty_scorecard_id, client.poverty_date) == (
        None,
        None,
        None,
        None,
    )
    for table in (SurveyResponse, SurveyAnswer, SurveyLineResult):
        assert session.scalar(select(func.count()).select_from(table)) == 0


def test_editing_rescores_and_changes_the_band_and_status(session):
    configure_ppi(session, bands=BANDS)
    client = make_client(session)
    survey = record(session, client, VERY_POOR)

    edited = service.edit_survey(session, survey.id, BETTER_OFF, now=NOW + timedelta(hours=1))

    assert (edited.headline_score, edited.band) == (66, "Better off")
    assert [a.option_position for a in edited.answers] == BETTER_OFF
    assert {r.line_slug: r.score for r in edited.line_results}["absolute-poverty-line"] == 66
    assert client.poverty_band == "Better off"


def test_editing_the_date_moves_the_status_to_the_now_latest_survey(session):
    configure_ppi(session, bands=BANDS)
    client = make_client(session)
    older = record(session, client, VERY_POOR, on=date(2024, 1, 1))
    record(session, client, BETTER_OFF, on=date(2024, 3, 1))

    service.edit_survey(session, older.id, VERY_POOR, now=NOW, date_collected=date(2024, 5, 1))

    assert (client.poverty_survey_id, client.poverty_band) == (older.id, "Very poor")


def test_a_future_date_is_refused_naming_the_date(session):
    configure_ppi(session)
    client = make_client(session)

    with pytest.raises(SurveyError, match="2024-06-16"):
        record(session, client, BETTER_OFF, on=date(2024, 6, 16), timezone="Africa/Nairobi")
    with pytest.raises(SurveyError, match="2024-07-01"):
        service.edit_survey(
            session, record(session, client, BETTER_OFF).id, BETTER_OFF, now=NOW, date_collected=date(2024, 7, 1)
        )


def test_today_in_the_mfi_timezone_is_accepted_even_when_utc_is_still_yesterday(session):
    configure_ppi(session)
    client = make_client(session)
    just_after_midnight_in_nairobi = datetime(2024, 6, 14, 21, 30, tzinfo=UTC)

    survey = record(
        session, client, BETTER_OFF, on=date(2024, 6, 15), now=just_after_midnight_in_nairobi, timezone="Africa/Nairobi"
    )

    assert survey.date_collected == date(2024, 6, 15)
    with pytest.raises(SurveyError, match="future"):
        record(session, client, BETTER_OFF, on=date(2024, 6, 15), now=just_after_midnight_in_nairobi, timezone="UTC")


def test_without_a_timezone_only_dates_in_the_future_everywhere_are_refused(session):
    configure_ppi(session)
    client = make_client(session)
    late_evening_utc = datetime(2024, 6, 14, 21, 30, tzinfo=UTC)  # already 15 June in Nairobi

    assert record(session, client, BETTER_OFF, on=date(2024, 6, 15), now=late_evening_utc).id
    with pytest.raises(SurveyError, match="2024-06-16 is in the future"):
        record(session, client, BETTER_OFF, on=date(2024, 6, 16), now=late_evening_utc)


def test_only_clients_can_be_surveyed(session):
    configure_ppi(session)
    office = make_office(session)
    staff = make_staff(session, office=office)

    for not_a_client in (office.id, staff.id, 999_999):  # no client exists, whatever the id
        with pytest.raises(SurveyError, match="only clients"):
            service.create_survey(
                session,
                not_a_client,
                BETTER_OFF,
                date_collected=date(2024, 6, 1),
                mode="officer",
                channel="cli",
                officer_id=staff.id,
                now=NOW,
            )
    assert session.scalar(select(func.count()).select_from(SurveyResponse)) == 0


def test_answers_that_do_not_fit_the_scorecard_are_refused_with_the_question(session):
    configure_ppi(session)
    client = make_client(session)

    with pytest.raises(SurveyError, match="Q2: reply 1-18"):
        record(session, client, [1, 99, 1, 1, 1, 1, 1, 1, 1, 1])
    with pytest.raises(SurveyError, match="Q10"):
        record(session, client, [1] * 9)


def test_surveys_need_active_settings(session):
    client = make_client(session)
    with pytest.raises(SurveyError, match="not configured"):
        record(session, client, BETTER_OFF)

    configure_ppi(session, status="inactive")
    with pytest.raises(SurveyError, match="inactive"):
        record(session, client, BETTER_OFF)


def test_a_survey_keeps_its_scorecard_version_when_settings_move_to_another(session):
    configure_ppi(session, scorecard_id="KEN-2024", bands=BANDS)
    client = make_client(session)
    old = record(session, client, VERY_POOR, on=date(2024, 1, 1))

    configure_ppi(session, scorecard_id="KEN-2008", headline_line="below-national", bands=BANDS)
    new = record(session, client, [1] * 10, on=date(2024, 6, 1))
    service.edit_survey(session, old.id, BETTER_OFF, now=NOW)

    assert (old.scorecard_id, old.headline_line, old.headline_score) == ("KEN-2024", "absolute-poverty-line", 66)
    assert (new.scorecard_id, new.headline_line, new.headline_score, new.band) == (
        "KEN-2008",
        "below-national",
        0,
        "Very poor",
    )
    assert client.poverty_scorecard_id == "KEN-2008"


def test_a_repeated_submission_key_returns_the_first_survey(session):
    configure_ppi(session)
    client = make_client(session)

    first = record(session, client, VERY_POOR, submission_key="ussd:abc:1")
    again = record(session, client, BETTER_OFF, submission_key="ussd:abc:1")

    assert again.id == first.id and again.headline_score == 25
    assert len(service.client_surveys(session, client.id)) == 1


@pytest.mark.parametrize(
    ("bands", "message"),
    [
        ("0-24:Very poor,30-100:Other", "gap between bands: nothing covers 25-29"),
        ("0-30:Very poor,25-100:Other", "bands overlap"),
        ("0-24:Very poor,25-90:Other", "must end at 100"),
        ("10-100:Other", "must start at 0"),
        ("0-24 Very poor", "cannot read band"),
    ],
)
def test_configure_refuses_bad_bands_clearly(session, bands, message):
    with pytest.raises(SurveyError, match=message):
        configure_ppi(session, bands=bands)
    assert service.get_config(session) is None


def test_configure_refuses_an_unknown_line_listing_the_valid_ones(session):
    with pytest.raises(SurveyError, match="valid lines: food-poverty-line, absolute-poverty-line"):
        configure_ppi(session, headline_line="national")


def test_configure_refuses_an_unknown_scorecard_and_status(session):
    with pytest.raises(SurveyError, match="unknown scorecard 'XYZ-1999'"):
        configure_ppi(session, scorecard_id="XYZ-1999")
    with pytest.raises(SurveyError, match="active or inactive"):
        configure_ppi(session, status="paused")


def test_configure_saves_and_replaces_the_settings(services):
    with services.transaction() as session:
        configure_ppi(session, bands=BANDS, show_band_to_client=True)
    with services.transaction() as session:
        service.configure(
            session, scorecard_id="KEN-2008", status="inactive", headline_line="below-national", bands=None, now=NOW
        )
    with services.transaction() as session:
        config = service.get_config(session)

    assert (config.scorecard_id, config.status, config.headline_line) == ("KEN-2008", "inactive", "below-national")
    assert config.show_band_to_client is True  # not given: kept
    assert config.bands == parse_bands(BANDS)  # not given: kept too (pausing the PPI must not lose them)
    with services.transaction() as session:
        service.configure(
            session, scorecard_id="KEN-2008", status="active", headline_line="below-national", bands="", now=NOW
        )
        assert service.get_config(session).bands is None  # given empty: removed


def test_settings_bands_read_back_as_written(services):
    with services.transaction() as session:
        configure_ppi(session, bands=BANDS)
    with services.transaction() as session:
        assert service.get_config(session).bands_text() == BANDS


def test_preview_scores_without_saving_and_lists_problems(session):
    config = configure_ppi(session, bands=BANDS)

    assert service.preview(config, VERY_POOR) == service.Preview(25, "Very poor", ())
    problems = service.preview(config, [1, 1]).problems
    assert "Q3: reply 1-9 (missing)" in problems and len(problems) == 8
    assert session.scalar(select(func.count()).select_from(SurveyResponse)) == 0


def test_surveys_are_committed_with_the_status(services):
    with services.transaction() as session:
        configure_ppi(session, bands=BANDS)
        client_id = make_client(session).id
        survey_id = record(session, session.get(Client, client_id), VERY_POOR).id

    with services.transaction() as session:
        client = session.get(Client, client_id)
        assert service.client_status(session, client) == service.PovertyStatus(
            survey_id=survey_id,
            scorecard_id="KEN-2024",
            date_collected=date(2024, 6, 1),
            band="Very poor",
            headline_line="absolute-poverty-line",
            headline_score=25,
            headline_likelihood=pytest.approx(0.6298, abs=1e-4),
        )


def _committed_client(services) -> int:
    """A client of an MFI with PPI configured, committed, for tests that save surveys from two transactions."""
    with services.transaction() as session:
        configure_ppi(session)
        return make_client(session).id


@pytest.mark.skipif(TEST_DATABASE_URL is None, reason="concurrent transactions: PostgreSQL")
def test_a_back_dated_survey_saved_while_a_newer_one_commits_leaves_the_status_on_the_newer(services) -> None:
    import threading
    import time

    client_id = _committed_client(services)
    newer_flushed = threading.Event()

    def record(on: date, answers: list[int], *, hold: float = 0.0) -> None:
        with services.transaction() as session:
            service.create_survey(
                session, client_id, answers, date_collected=on, mode="officer", channel="cli", officer_id=None, now=NOW
            )
            session.flush()
            if hold:
                newer_flushed.set()
                time.sleep(hold)  # the newer survey's transaction stays open while the back-dated one is saved

    newer = threading.Thread(target=record, args=(date(2024, 6, 1), [1] * 10), kwargs={"hold": 0.5})
    newer.start()
    assert newer_flushed.wait(10)
    record(date(2024, 1, 10), [47, 18, 9, 2, 2, 2, 2, 2, 2, 2])
    newer.join()
    with services.transaction() as session:
        client = session.get(Client, client_id)
        latest = service.client_surveys(session, client_id)[-1]
        assert latest.date_collected == date(2024, 6, 1)
        assert (client.poverty_survey_id, client.poverty_date) == (latest.id, date(2024, 6, 1))


@pytest.mark.skipif(TEST_DATABASE_URL is None, reason="concurrent transactions: PostgreSQL")
def test_a_submission_saved_twice_at_once_is_stored_once_and_both_get_the_same_survey(services) -> None:
    import threading
    import time

    client_id = _committed_client(services)
    first_inserted = threading.Event()
    saved: dict[str, int] = {}

    def submit(name: str, *, hold: float = 0.0) -> None:
        with services.transaction() as session:
            survey = service.create_survey(
                session, client_id, VERY_POOR, date_collected=date(2024, 6, 1), mode="self", channel="at-ussd",
                officer_id=None, now=NOW, submission_key="at-ussd:ATUid_twice:1",
            )  # fmt: skip
            saved[name] = survey.id
            if hold:
                first_inserted.set()
                time.sleep(hold)  # the first submission's transaction is still open when the second arrives

    first = threading.Thread(target=submit, args=("first",), kwargs={"hold": 0.5})
    first.start()
    assert first_inserted.wait(10)
    submit("second")  # waits on the first one's key, then finds its survey
    first.join()
    assert saved["second"] == saved["first"]
    with services.transaction() as session:
        assert session.scalar(select(func.count()).select_from(SurveyResponse)) == 1
        assert session.scalar(select(func.count()).select_from(SurveyAnswer)) == len(VERY_POOR)
