"""Helpers for channel adapter tests: recorded payload fixtures and a loopback fake provider.

The fake provider is a tiny `http.server` on 127.0.0.1 (random port) that answers each request with the next
scripted response and records what it received, so adapters are exercised through their real SDKs.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from gateway.messages import WebhookRequest

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "providers"


def fixture_text(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def fixture_form(name: str) -> dict[str, str]:
    return dict(parse_qsl(fixture_text(name), keep_blank_values=True))


def form_request(form: dict[str, str], url: str = "https://connect.example.org/webhooks", **kw: Any) -> WebhookRequest:
    return WebhookRequest(url=url, headers=kw.pop("headers", {}), form=form, **kw)


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode(), keep_blank_values=True))

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Canned:
    status: int
    body: str
    content_type: str = "application/json"
    hang: threading.Event | None = None  # when set, answer only after it is set (forces a client timeout)


@dataclass
class FakeProvider:
    """A tiny HTTP server on 127.0.0.1 answering each request with the next canned response."""

    base_url: str = ""
    script: list[Canned] = field(default_factory=list)
    requests: list[Recorded] = field(default_factory=list)
    default: Canned | None = None
    hangs: list[threading.Event] = field(default_factory=list)

    def then(self, status: int, body: str, content_type: str = "application/json") -> FakeProvider:
        self.script.append(Canned(status, body, content_type))
        return self

    def then_hang(self) -> FakeProvider:
        """The next request gets no answer until the test ends."""
        event = threading.Event()
        self.hangs.append(event)
        self.script.append(Canned(200, "{}", hang=event))
        return self

    def next_response(self) -> Canned:
        if self.script:
            return self.script.pop(0)
        assert self.default is not None, "fake provider got more requests than scripted"
        return self.default


def _handler_for(fake: FakeProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server naming
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            fake.requests.append(Recorded("POST", self.path, dict(self.headers.items()), body))
            canned = fake.next_response()
            if canned.hang is not None:
                canned.hang.wait(timeout=5)
            payload = canned.body.encode()
            self.send_response(canned.status)
            self.send_header("Content-Type", canned.content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            try:
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence request logging
            pass

    return Handler


@contextmanager
def serve(fake: FakeProvider) -> Iterator[FakeProvider]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(fake))
    server.daemon_threads = True
    fake.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        for event in fake.hangs:
            event.set()
        server.shutdown()
        server.server_close()
