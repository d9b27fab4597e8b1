"""The same USSD hop reaches two web processes at the same moment (a gateway retry racing the original): the
answer is saved once and both answers show the same screen. Two apps share one private PostgreSQL and Redis, like
two gunicorn processes, and a barrier releases both requests together."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from flask import Flask
from sqlalchemy import func, select

from conversations.models import ConversationDraft
from surveys.models import SurveyAnswer, SurveyResponse
from tests.factories import configure_ppi, make_client
from tests.faults.fault_kit import PostgresServer, RedisServer, build_app
from tests.integration.test_ussd import BANDS, PHONE

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture
def two_web_processes(private_postgres: PostgresServer, private_redis: RedisServer) -> Iterator[tuple[Flask, Flask]]:
    first = build_app(private_postgres.url, private_redis.url)
    second = build_app(private_postgres.url, private_redis.url)
    services = first.extensions["services"]
    with services.transaction() as session:
        configure_ppi(session, bands=BANDS, show_band_to_client=True)
        make_client(session, external_id="C0002", name="Jane Wanjiru", phones=[PHONE], language="en")
    yield first, second
    for application in (first, second):
        application.extensions["services"].dispose()


def _hop(application: Flask, text: str) -> str:
    form = {"sessionId": "ATUid_race", "serviceCode": "*384#", "phoneNumber": PHONE, "networkCode": "63902"}
    response = application.test_client().post("/webhooks/africastalking/ussd", data={**form, "text": text})
    assert response.status_code == 200
    return response.get_data(as_text=True)


def _race(apps: tuple[Flask, Flask], text: str) -> list[str]:
    barrier = threading.Barrier(len(apps))

    def at_the_same_moment(application: Flask) -> str:
        barrier.wait(timeout=10)
        return _hop(application, text)

    with ThreadPoolExecutor(max_workers=len(apps)) as pool:
        return list(pool.map(at_the_same_moment, apps))


def _answer_all_but_submit(application: Flask) -> str:
    """Open the survey and answer every question; returns the `text` that shows the review screen."""
    text = ""
    assert _hop(application, text).startswith("CON ")
    for answer in ("1", "4") + ("1",) * 9:
        text = f"{text}*{answer}" if text else answer
        assert _hop(application, text).startswith("CON ")
    return text


def test_an_answer_arriving_twice_at_once_is_saved_once_and_both_see_the_next_question(two_web_processes):
    first, _second = two_web_processes
    _hop(first, "")
    _hop(first, "1")  # the survey's first question
    screens = _race(two_web_processes, "1*4")
    assert screens[0] == screens[1] and screens[0].startswith("CON 2/10 ")
    with first.extensions["services"].transaction() as session:
        assert session.scalars(select(ConversationDraft)).one().answers == {"0": 4}


def test_a_submission_arriving_twice_at_once_saves_one_survey(two_web_processes):
    first, _second = two_web_processes
    done = _race(two_web_processes, _answer_all_but_submit(first) + "*1")
    assert any(screen.startswith("END Thank you") for screen in done)
    with first.extensions["services"].transaction() as session:
        assert session.scalar(select(func.count()).select_from(SurveyResponse)) == 1
        assert session.scalar(select(func.count()).select_from(SurveyAnswer)) == 10
        assert session.scalar(select(func.count()).select_from(ConversationDraft)) == 0


def test_a_submission_arriving_twice_at_once_shows_both_the_same_end_screen(two_web_processes):
    first, _second = two_web_processes
    done = _race(two_web_processes, _answer_all_but_submit(first) + "*1")
    assert done[0] == done[1]
