"""A whole survey, a PIN activation and consent changes over USSD and SMS, through a real werkzeug server with
logging at DEBUG: no PIN, activation code, survey answer sequence, webhook token or full phone number reaches a
log line, neither after the app's redaction filter nor in the raw records (the code itself must not log them)."""

from __future__ import annotations

import itertools
import logging
import re
import threading
from collections.abc import Iterator

import httpx
import pytest
from werkzeug.serving import make_server

from accounts import service as accounts
from db import utcnow
from logs import RedactingFilter
from settings import Settings
from tests.conftest import TEST_REDIS_URL
from tests.factories import configure_ppi, make_client

PHONE = "+254733123457"
PIN = "7391"
TOKEN = "at-hook-token-5f1e9c"
SURVEY_ANSWERS = ["2", "1", "3", "1", "2", "1", "1", "2", "1", "1"]
_ids = itertools.count(1)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        app_env="test", database_url=database_url, redis_url=TEST_REDIS_URL, log_level="DEBUG", at_webhook_token=TOKEN
    )


class Recorder(logging.Handler):
    """Keeps every formatted line, after the same redaction filter the app puts on its handler."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.addFilter(RedactingFilter())
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    handler = Recorder()
    loggers = [logging.getLogger(), logging.getLogger("werkzeug"), logging.getLogger("rq")]
    previous = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    yield handler
    for logger, level in zip(loggers, previous, strict=True):
        logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.fixture
def server_url(app) -> Iterator[str]:  # type: ignore[no-untyped-def]
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


class UssdPhone:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.session_id = ""
        self.history: list[str] = []

    def dial(self) -> str:
        self.session_id, self.history = f"ATUid_log{next(_ids)}", []
        return self._post("")

    def send(self, text: str) -> str:
        self.history.append(text)
        return self._post("*".join(self.history))

    def _post(self, text: str) -> str:
        form = {"sessionId": self.session_id, "serviceCode": "*384#", "phoneNumber": PHONE, "networkCode": "1"}
        response = httpx.post(
            f"{self.base_url}/webhooks/africastalking/ussd?token={TOKEN}", data={**form, "text": text}
        )
        assert response.status_code == 200
        return response.text


def _sms(base_url: str, text: str) -> None:
    form = {"from": PHONE, "to": "22384", "text": text, "id": f"ATXid_log{next(_ids)}", "date": "2026-11-23 09:31:07"}
    assert httpx.post(f"{base_url}/webhooks/africastalking/sms?token={TOKEN}", data=form).status_code == 200


def _forbidden(line: str, code: str) -> list[str]:
    digits = PHONE.lstrip("+")
    found = [secret for secret in (digits, digits[3:], "*".join(SURVEY_ANSWERS[:3])) if secret in line]
    found += [secret for secret in (PIN, code) if re.search(rf"(?<![0-9A-Za-z]){secret}(?![0-9A-Za-z])", line)]
    return found


def test_no_secret_reaches_any_log_line(services, server_url, recorder, caplog, run_jobs):
    caplog.set_level(logging.DEBUG)
    with services.transaction() as session:
        configure_ppi(session, bands="0-49:Poor,50-100:Better off", show_band_to_client=True)
        client = make_client(session, external_id="C0002", phones=[PHONE], language="en")
        code = accounts.issue_activation_code(session, client, issued_by="staff:S001", now=utcnow(), ttl_hours=24)

    phone = UssdPhone(server_url)
    phone.dial()
    phone.send("1")
    for answer in SURVEY_ANSWERS:
        phone.send(answer)
    assert phone.send("1").startswith("END ")  # submitted

    phone.dial()
    phone.send("2")  # balances: activation first
    for secret in (code, PIN, PIN):
        assert phone.send(secret).startswith(("CON ", "END "))

    phone.dial()
    screen = phone.send("5")  # data sharing
    while "\n1 " not in screen:
        screen = phone.send("98")
    phone.send("1")
    _sms(server_url, "NO")
    _sms(server_url, "YES")
    run_jobs()

    assert any("werkzeug" in line for line in recorder.lines)  # the access log was captured too
    leaks = {line: _forbidden(line, code) for line in recorder.lines if _forbidden(line, code)}
    assert not leaks, leaks
    raw = [record.getMessage() + (record.exc_text or "") for record in caplog.records]
    raw_leaks = {line: _forbidden(line, code) for line in raw if _forbidden(line, code)}
    assert not raw_leaks, raw_leaks


def _not_from_the_test_client(lines: list[str]) -> list[str]:
    return [line for line in lines if " httpx " not in line]  # the test's own HTTP client logs its URLs


def test_the_webhook_token_never_reaches_the_access_log(services, server_url, recorder):
    UssdPhone(server_url).dial()
    assert any("werkzeug" in line for line in recorder.lines)
    assert not [line for line in _not_from_the_test_client(recorder.lines) if TOKEN in line]


def test_the_telegram_bot_token_never_reaches_the_logs(recorder):
    from gateway.channels.telegram import Telegram
    from gateway.messages import Outbound
    from tests.unit.channels.channel_fakes import FakeProvider, fixture_text, serve

    bot_token = "123456:bot-token-secret"
    with serve(FakeProvider()) as fake:
        fake.then(200, fixture_text("telegram_send_message_ok.json"))
        channel = Telegram(bot_token=bot_token, base_url=fake.base_url + "/bot")
        channel.send(Outbound(channel="telegram", recipient="tg:5550001234", text="Hello", idempotency_key="k"))
    assert fake.requests
    assert not [line for line in recorder.lines if bot_token in line]
