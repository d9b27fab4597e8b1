"""Fixtures for channel adapter tests: a loopback fake provider, and a guard against real network access.

The guard makes any connection to a non-loopback address fail, so a mistake in an adapter (or a test)
can never reach a real provider.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from channel_fakes import FakeProvider, serve


def _is_loopback(address: object) -> bool:
    if not isinstance(address, tuple):
        return True  # AF_UNIX paths
    host = str(address[0])
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def no_real_network(monkeypatch: pytest.MonkeyPatch) -> None:
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def guarded_connect(self: socket.socket, address: Any) -> Any:
        if not _is_loopback(address):
            raise ConnectionRefusedError(f"test tried to reach {address!r}; only loopback is allowed")
        return real_connect(self, address)

    def guarded_connect_ex(self: socket.socket, address: Any) -> Any:
        if not _is_loopback(address):
            raise ConnectionRefusedError(f"test tried to reach {address!r}; only loopback is allowed")
        return real_connect_ex(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", guarded_connect_ex)


@pytest.fixture
def fake_provider() -> Iterator[FakeProvider]:
    with serve(FakeProvider()) as fake:
        yield fake
