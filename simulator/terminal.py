"""`impact-connect simulate ussd|sms`: a phone in the terminal, for demos without a browser and for quick checks.

Both commands talk to the real webhooks, as Africa's Talking and the console SMS channel would: in-process by
default (the app's own test client, so nothing listens on a port), or over HTTP against a running server with
`--url`. The USSD phone keeps AT's cumulative `text` and a fresh sessionId per dial; the SMS phone posts to the
console webhook and prints the outbox messages addressed to it (read from `GET /simulator/messages`).
"""

from __future__ import annotations

import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import click
import httpx
from flask import Flask
from flask.cli import ScriptInfo

from gateway.channels import BadRequest
from gateway.channels.base import e164

USSD_PATH = "/webhooks/africastalking/ussd"
SMS_PATH = "/webhooks/console/sms"
MESSAGES_PATH = "/simulator/messages"
DEFAULT_SERVICE_CODE = "*384*123#"
NETWORK_CODE = "63902"
RULE = "-" * 40
HTTP_TIMEOUT_SECONDS = 15.0


class SimulatorError(click.ClickException):
    """The server could not be reached or refused the simulator; ends the command with exit code 1."""


class Transport(Protocol):
    """How the terminal phone reaches the app: a form POST and a JSON GET, each returning (status, body)."""

    def post_form(self, path: str, form: dict[str, str], query: dict[str, str]) -> tuple[int, str]: ...

    def get_json(self, path: str, params: dict[str, str]) -> tuple[int, Any]: ...


class InProcessTransport:
    """Calls the app directly through Flask's test client: no server, no port."""

    def __init__(self, app: Flask) -> None:
        self._client = app.test_client()

    def post_form(self, path: str, form: dict[str, str], query: dict[str, str]) -> tuple[int, str]:
        response = self._client.post(path, data=form, query_string=query)
        return response.status_code, response.get_data(as_text=True)

    def get_json(self, path: str, params: dict[str, str]) -> tuple[int, Any]:
        response = self._client.get(path, query_string=params)
        return response.status_code, response.get_json(silent=True)


class HttpTransport:
    """Calls a running server over HTTP."""

    def __init__(self, base_url: str, client: httpx.Client | None = None) -> None:
        self._client = client or httpx.Client(base_url=base_url.rstrip("/"), timeout=HTTP_TIMEOUT_SECONDS)

    def post_form(self, path: str, form: dict[str, str], query: dict[str, str]) -> tuple[int, str]:
        response = self._request("POST", path, data=form, params=query)
        return response.status_code, response.text

    def get_json(self, path: str, params: dict[str, str]) -> tuple[int, Any]:
        response = self._request("GET", path, params=params)
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, None

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise SimulatorError(f"could not reach {self._client.base_url}: {type(exc).__name__}") from exc


@dataclass(frozen=True)
class Screen:
    """One USSD screen: the text without its CON/END prefix, and whether the session is over."""

    text: str
    final: bool


@dataclass
class UssdPhone:
    """A feature phone on Africa's Talking: one sessionId per dial, the whole session's input joined by `*`."""

    transport: Transport
    phone: str
    service_code: str = DEFAULT_SERVICE_CODE
    token: str = ""
    session_id: str = ""
    history: list[str] = field(default_factory=list)

    def dial(self) -> Screen:
        self.session_id = "ATUid_" + secrets.token_hex(16)
        self.history = []
        return self._hop("")

    def send(self, reply: str) -> Screen:
        self.history.append(reply)
        return self._hop("*".join(self.history))

    def _hop(self, text: str) -> Screen:
        form = {
            "sessionId": self.session_id,
            "serviceCode": self.service_code,
            "phoneNumber": self.phone,
            "networkCode": NETWORK_CODE,
            "text": text,
        }
        status, body = self.transport.post_form(USSD_PATH, form, {"token": self.token} if self.token else {})
        if status != 200:
            return Screen(f"(the server answered {status}: {body.strip()[:200]})", final=True)
        if body.startswith("CON "):
            return Screen(body[4:], final=False)
        return Screen(body.removeprefix("END "), final=True)  # AT ends the session on anything but CON


@dataclass
class SmsPhone:
    """A phone texting the console SMS channel; `new_replies()` returns outbox texts it has not shown yet."""

    transport: Transport
    phone: str
    last_seen_id: int = 0

    def skip_history(self) -> None:
        """Start the conversation after the messages already in the outbox for this phone."""
        messages = self._fetch({})
        self.last_seen_id = max((message["id"] for message in messages), default=0)

    def send(self, text: str) -> None:
        form = {"from": self.phone, "text": text, "id": "sim-" + secrets.token_hex(8)}
        status, body = self.transport.post_form(SMS_PATH, form, {})
        if status != 200:
            raise SimulatorError(f"the SMS webhook answered {status}: {body.strip()[:200]}")

    def new_replies(self) -> list[str]:
        messages = self._fetch({"after": str(self.last_seen_id)})
        if messages:
            self.last_seen_id = messages[-1]["id"]
        return [message["text"] for message in messages]

    def _fetch(self, extra: dict[str, str]) -> list[dict[str, Any]]:
        status, payload = self.transport.get_json(MESSAGES_PATH, {"phone": self.phone, **extra})
        if status == 404:
            raise SimulatorError("this server does not offer the simulator (it is off in production)")
        if status != 200 or not isinstance(payload, dict):
            raise SimulatorError(f"could not read the messages (HTTP {status})")
        return list(payload["messages"])


@click.group("simulate", help="A phone in the terminal: USSD or SMS, in-process or against a running server.")
def simulate_group() -> None:
    pass


def _e164_phone(_context: click.Context, _parameter: click.Parameter, value: str) -> str:
    try:
        return e164(value, "phone")
    except BadRequest as exc:
        raise click.BadParameter("expected an international phone number, e.g. +254700000002") from exc


def _phone_option(function: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--phone", required=True, callback=_e164_phone, help="The phone to act as, e.g. +254700000002."
    )(function)


def _url_option(function: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--url", default=None, help="Base URL of a running server (e.g. http://127.0.0.1:5000); default: in-process."
    )(function)


@simulate_group.command("ussd", help="Dial the USSD service: type each reply; an empty line hangs up.")
@_phone_option
@_url_option
@click.option("--service-code", default=DEFAULT_SERVICE_CODE, show_default=True, help="The USSD code dialled.")
@click.option("--token", default=None, help="The AT webhook token of the server at --url (in-process: from settings).")
def ussd_command(phone: str, url: str | None, service_code: str, token: str | None) -> None:
    transport, configured_token = _transport(url)
    handset = UssdPhone(transport, phone, service_code=service_code, token=token or configured_token)
    click.echo(f"Dialling {service_code} as {phone} ({url or 'in-process'}). An empty line hangs up.")
    screen = handset.dial()
    while True:
        _show_screen(screen)
        if screen.final:
            click.echo("Session ended.")
            return
        reply = _read_line()
        if not reply:
            click.echo("Hung up.")
            return
        screen = handset.send(reply)


@simulate_group.command("sms", help="Text the service: each line is one SMS; an empty line ends.")
@_phone_option
@_url_option
@click.option(
    "--wait",
    default=5.0,
    show_default=True,
    type=click.FloatRange(0, 120),
    help="Seconds to wait for replies from a server whose worker sends them later.",
)
def sms_command(phone: str, url: str | None, wait: float) -> None:
    transport, _token = _transport(url)
    handset = SmsPhone(transport, phone)
    handset.skip_history()
    click.echo(f"Texting the service as {phone} ({url or 'in-process'}). One line per SMS; an empty line ends.")
    while True:
        text = _read_line()
        if not text:
            click.echo("Bye.")
            return
        handset.send(text)
        replies = _await_replies(handset, wait if url else 0.0)
        for reply in replies:
            click.echo(_indent(reply, "< "))
        if not replies:
            click.echo("(no reply)")


def _transport(url: str | None) -> tuple[Transport, str]:
    """The transport, and the AT webhook token known locally (only in-process: a remote one needs --token)."""
    if url:
        return HttpTransport(url), ""
    app = _in_process_app()
    return InProcessTransport(app), app.extensions["settings"].at_webhook_token


def _in_process_app() -> Flask:
    """The app the CLI loaded (a test's app under CliRunner), or one built from the environment."""
    info = click.get_current_context().find_object(ScriptInfo)
    if info is not None:
        return info.load_app()
    from app import create_app

    return create_app()


def _await_replies(handset: SmsPhone, wait_seconds: float, poll_seconds: float = 0.5) -> list[str]:
    deadline = time.monotonic() + wait_seconds
    while True:
        replies = handset.new_replies()
        if replies or time.monotonic() >= deadline:
            return replies
        time.sleep(poll_seconds)


def _show_screen(screen: Screen) -> None:
    click.echo(RULE)
    click.echo(screen.text)
    click.echo(RULE + (" [END]" if screen.final else ""))


def _read_line() -> str:
    click.echo("> ", nl=False)
    line = sys.stdin.readline()
    if not line:
        click.echo()  # EOF: finish the prompt's line
    return line.strip()


def _indent(text: str, first: str) -> str:
    padding = " " * len(first)
    return "\n".join((first if index == 0 else padding) + line for index, line in enumerate(text.splitlines()))
