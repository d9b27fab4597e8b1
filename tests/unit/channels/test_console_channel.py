"""Console: the offline channel behind the embedded default and the phone simulator's SMS thread."""

from __future__ import annotations

import pytest
from channel_fakes import form_request

from gateway.channels.base import BadRequest
from gateway.channels.console import Console
from gateway.messages import Outbound, Reply


def test_send_records_messages_in_the_list_it_was_given() -> None:
    sent: list[Outbound] = []
    console = Console(sent)
    first = Outbound("console", "+254711000111", "Salio: KES 1,500", "k1")
    second = Outbound("console", "+254722000222", "Karibu", "k2")

    ids = [console.send(first), console.send(second)]

    assert sent == [first, second]
    assert ids == ["console-1", "console-2"]
    assert console.messages_to("+254711000111") == [first]


PARSE_TABLE = [
    ("with message id", {"from": "+254711000111", "text": "SALIO", "id": "sim-7"}, "SALIO", "sim-7"),
    ("without message id", {"from": "254711000111", "text": "1"}, "1", None),
    ("without text", {"from": "+254711000111"}, "", None),
]


@pytest.mark.parametrize(("form", "text", "message_id"), [r[1:] for r in PARSE_TABLE], ids=[r[0] for r in PARSE_TABLE])
def test_parse_simulator_posts(form: dict[str, str], text: str, message_id: str | None) -> None:
    [inbound] = Console().parse(form_request(form))

    assert inbound.sender == "+254711000111"
    assert (inbound.text, inbound.provider_message_id) == (text, message_id)
    assert inbound.session_id == "console:+254711000111"


@pytest.mark.parametrize("form", [{}, {"from": "hello"}], ids=["missing sender", "sender not a phone"])
def test_parse_rejects_posts_without_a_phone(form: dict[str, str]) -> None:
    with pytest.raises(BadRequest, match="from"):
        Console().parse(form_request(form))


def test_respond_shows_the_replies_for_terminal_use() -> None:
    assert Console().respond([Reply("Karibu"), Reply("1. Salio")]).body == "Karibu\n\n1. Salio"
