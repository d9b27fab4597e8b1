"""Console: the channel that never leaves the machine, for the embedded default, demos and tests.

It behaves like an SMS provider (asynchronous: replies go through the outbox and `send()`), but `send()`
only appends the message to a list, which the phone simulator reads to show its SMS thread. Inbound
messages come from the simulator or a terminal as a form post:

    from=%2B254711000111&text=SALIO&id=sim-0007

`id` is optional; without it every post counts as a new message.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import ClassVar

from gateway.channels.base import e164, require_fields, sender_session
from gateway.messages import Inbound, Outbound, Reply, WebhookRequest, WebhookResponse


class Console:
    slug: ClassVar[str] = "console"
    synchronous: ClassVar[bool] = False

    def __init__(self, sent: list[Outbound] | None = None) -> None:
        self.sent: list[Outbound] = sent if sent is not None else []
        self._lock = threading.Lock()

    def verify(self, request: WebhookRequest) -> None:
        """Nothing to check: the console is only routed in development and by the simulator."""

    def parse(self, request: WebhookRequest) -> list[Inbound]:
        (raw_sender,) = require_fields(request.form, "from")
        sender = e164(raw_sender, "from")
        return [
            Inbound(
                channel=self.slug,
                sender=sender,
                text=request.form.get("text", ""),
                session_id=sender_session(self.slug, sender),
                provider_message_id=request.form.get("id") or None,
            )
        ]

    def respond(self, replies: Sequence[Reply]) -> WebhookResponse:
        return WebhookResponse(body="\n\n".join(reply.text for reply in replies))

    def send(self, message: Outbound) -> str | None:
        with self._lock:
            self.sent.append(message)
            return f"console-{len(self.sent)}"

    def messages_to(self, recipient: str) -> list[Outbound]:
        """What the simulator shows in one phone's SMS thread, oldest first."""
        with self._lock:
            return [message for message in self.sent if message.recipient == recipient]
