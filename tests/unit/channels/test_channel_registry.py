"""The channel registry: every provider is present, and a provider without credentials cannot send."""

from __future__ import annotations

import pytest

from gateway.channels import Channel, ChannelConfig, SendError, build_channels, get_channel
from gateway.messages import Outbound

SLUGS = {"console", "at-ussd", "at-sms", "twilio-sms", "telegram"}


def test_every_channel_is_registered_under_its_slug_even_without_credentials() -> None:
    channels = build_channels(ChannelConfig())

    assert set(channels) == SLUGS
    assert all(channel.slug == slug and isinstance(channel, Channel) for slug, channel in channels.items())
    assert [slug for slug, channel in channels.items() if channel.synchronous] == ["at-ussd"]


@pytest.mark.parametrize(
    ("slug", "recipient"),
    [("at-sms", "+254711000111"), ("twilio-sms", "+254711000111"), ("telegram", "tg:5550001234")],
)
def test_unconfigured_provider_refuses_to_send_permanently(slug: str, recipient: str) -> None:
    channel = build_channels(ChannelConfig())[slug]

    with pytest.raises(SendError, match="not configured") as caught:
        channel.send(Outbound(slug, recipient, "hi", "k1"))

    assert caught.value.retryable is False


def test_console_sends_into_the_given_list() -> None:
    sent: list[Outbound] = []
    channels = build_channels(ChannelConfig(), console_sent=sent)

    channels["console"].send(Outbound("console", "+254711000111", "hi", "k1"))

    assert [message.text for message in sent] == ["hi"]


def test_twilio_status_callback_follows_the_public_url() -> None:
    config = ChannelConfig(
        twilio_account_sid="AC0123456789abcdef0123456789abcdef",
        twilio_auth_token="12345678901234567890123456789012",
        twilio_from_number="+15005550006",
        twilio_public_url="https://connect.example.org/",
    )

    twilio = build_channels(config)["twilio-sms"]

    assert twilio._status_callback_url == "https://connect.example.org/webhooks/twilio/status"  # type: ignore[attr-defined]


def test_unknown_slug_is_named_in_the_error() -> None:
    with pytest.raises(KeyError, match="whatsapp"):
        get_channel(build_channels(ChannelConfig()), "whatsapp")


def test_tests_here_cannot_reach_a_real_provider() -> None:
    import socket

    with pytest.raises(ConnectionRefusedError, match="only loopback"):
        socket.create_connection(("203.0.113.10", 443), timeout=1)
