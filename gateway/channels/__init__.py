"""The one explicit registry of channel adapters, built from credentials by the composition root.

A new provider is one module in this package, one line in `build_channels` and one test file. Every provider
is registered even without credentials, so its webhooks still parse (and fail verification cleanly);
its `send()` then raises a non-retryable `SendError("... not configured")`.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.channels.africastalking_sms import AfricasTalkingSMS
from gateway.channels.africastalking_ussd import AfricasTalkingUSSD
from gateway.channels.base import BadRequest, Channel, Forbidden, SendError, StatusChannel
from gateway.channels.console import Console
from gateway.channels.telegram import Telegram
from gateway.channels.twilio_sms import TwilioSMS
from gateway.messages import Outbound

__all__ = [
    "BadRequest",
    "Channel",
    "ChannelConfig",
    "Forbidden",
    "SendError",
    "StatusChannel",
    "build_channels",
    "get_channel",
]

TWILIO_STATUS_PATH = "/webhooks/twilio/status"  # DESIGN.md §3


@dataclass(frozen=True)
class ChannelConfig:
    """Provider credentials; an empty string means "not configured"."""

    at_username: str = ""
    at_api_key: str = ""
    at_webhook_token: str = ""
    at_sender_id: str = ""
    twilio_account_sid: str = ""
    twilio_auth_token: str = ""
    twilio_from_number: str = ""
    twilio_public_url: str = ""
    telegram_bot_token: str = ""
    telegram_webhook_secret: str = ""
    telegram_base_url: str = ""
    send_timeout_seconds: float = 10.0


def build_channels(config: ChannelConfig, console_sent: list[Outbound] | None = None) -> dict[str, Channel]:
    """Every channel by slug. `console_sent` is the list the console appends sent messages to."""
    public_url = config.twilio_public_url.rstrip("/")
    channels: list[Channel] = [
        Console(console_sent),
        AfricasTalkingUSSD(webhook_token=config.at_webhook_token),
        AfricasTalkingSMS(
            username=config.at_username,
            api_key=config.at_api_key,
            sender_id=config.at_sender_id,
            webhook_token=config.at_webhook_token,
            timeout_seconds=config.send_timeout_seconds,
        ),
        TwilioSMS(
            account_sid=config.twilio_account_sid,
            auth_token=config.twilio_auth_token,
            from_number=config.twilio_from_number,
            public_url=public_url,
            status_callback_url=public_url + TWILIO_STATUS_PATH if public_url else "",
            timeout_seconds=config.send_timeout_seconds,
        ),
        Telegram(
            bot_token=config.telegram_bot_token,
            webhook_secret=config.telegram_webhook_secret,
            base_url=config.telegram_base_url,
            timeout_seconds=config.send_timeout_seconds,
        ),
    ]
    return {channel.slug: channel for channel in channels}


def get_channel(channels: dict[str, Channel], slug: str) -> Channel:
    """The channel for `slug`; `KeyError` names the unknown slug."""
    try:
        return channels[slug]
    except KeyError:
        raise KeyError(f"unknown channel {slug!r}") from None
