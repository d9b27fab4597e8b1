"""The USSD webhook as a plain WSGI handler in front of Flask.

Why it exists: a USSD caller waits for every screen, and a survey is a dozen hops. Building Flask's and werkzeug's
request and response objects, and running werkzeug's form parser, were 0.6 M of the 4.0 M instructions of an
average survey hop (`bench/bench_hop_instructions.py`). This handler reads the ordinary request Africa's Talking
sends (a POST of a url-encoded form with a Content-Length within the limit) with the standard library, as werkzeug
itself parses it, hands it to the same `gateway.inbound.receive_messages` as the Flask routes, and answers with the
same status, body and headers. Any other request to that path (another method or content type, no length, a body
over the limit) goes on to Flask, whose route and error handling answer it as before.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

import werkzeug.urls  # noqa: F401 - registers the "werkzeug.url_quote" decoding fallback that werkzeug's form parser uses
from werkzeug.datastructures import EnvironHeaders
from werkzeug.wsgi import get_current_url

from bootstrap import Services
from gateway.inbound import receive_messages
from gateway.messages import WebhookRequest, WebhookResponse
from logs import log_unexpected_error

logger = logging.getLogger(__name__)

FORM_TYPE = "application/x-www-form-urlencoded"
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class UssdWebhook:
    """WSGI middleware: answers the USSD webhook's ordinary requests itself and passes everything else to `app`."""

    def __init__(
        self, app: WSGIApp, services: Services, *, path: str, max_body_bytes: int, headers: Mapping[str, str]
    ) -> None:
        self.app = app
        self.services = services
        self.path = path
        self.max_body_bytes = max_body_bytes
        self.headers = list(headers.items())

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        length = self._ordinary_length(environ)
        if length is None:
            return self.app(environ, start_response)
        body = environ["wsgi.input"].read(length) if length else b""
        webhook = WebhookRequest(
            headers=EnvironHeaders(environ),
            form=_first_values(body),
            query=_first_values(environ.get("QUERY_STRING", "").encode("latin-1")),
            body=body,
            url_of=lambda: get_current_url(environ),
        )
        try:
            response = receive_messages(self.services, "at-ussd", webhook)
        except Exception:  # as the Flask app's error handler answers
            error = log_unexpected_error(logger, self.path)
            response = WebhookResponse(json.dumps(error), status=500, content_type="application/json")
        payload = response.body.encode()
        status = f"{response.status} {HTTPStatus(response.status).phrase}"
        start_response(
            status,
            [("Content-Type", response.content_type), ("Content-Length", str(len(payload))), *self.headers],
        )
        return [payload]

    def _ordinary_length(self, environ: dict[str, Any]) -> int | None:
        """The body's length when this is a request the handler answers itself, else None (Flask answers it)."""
        if environ.get("PATH_INFO") != self.path or environ.get("REQUEST_METHOD") != "POST":
            return None
        if environ.get("CONTENT_TYPE", "").partition(";")[0].strip().lower() != FORM_TYPE:
            return None
        if environ.get("HTTP_TRANSFER_ENCODING"):
            return None
        try:
            length = int(environ.get("CONTENT_LENGTH") or "")
        except ValueError:
            return None
        return length if 0 <= length <= self.max_body_bytes else None


def _first_values(encoded: bytes) -> dict[str, str]:
    """A url-encoded form or query as werkzeug reads it (`MultiDict[name]` is a name's first value); a body that is
    not UTF-8 is an empty form, as werkzeug's parser makes of it."""
    try:
        pairs = parse_qsl(encoded.decode(), keep_blank_values=True, errors="werkzeug.url_quote")
    except ValueError:
        return {}
    values: dict[str, str] = {}
    for name, value in pairs:
        values.setdefault(name, value)
    return values
