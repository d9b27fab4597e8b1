"""HMAC signatures for feed deliveries, for us (sending) and for the portal (receiving).

The signature covers `<unix timestamp>.<body>` so a captured request cannot be replayed later with a fresh
timestamp, and the receiver refuses timestamps outside a tolerance window. Receivers accept either of two secrets
so the shared secret can be rotated without a gap (PORTAL_SECRET and PORTAL_SECRET_PREVIOUS).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from datetime import datetime

TIMESTAMP_HEADER = "X-Timestamp"
SIGNATURE_HEADER = "X-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
SCHEME = "sha256="


def signature(body: bytes, secret: str, timestamp: int) -> str:
    """`sha256=<hex>` of HMAC-SHA256(secret, "<timestamp>.<body>")."""
    message = f"{timestamp}.".encode() + body
    return SCHEME + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signed_headers(body: bytes, secret: str, *, now: datetime, idempotency_key: str) -> dict[str, str]:
    """The headers a delivery carries: content type, timestamp, signature and idempotency key."""
    timestamp = int(now.timestamp())
    return {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature(body, secret, timestamp),
        IDEMPOTENCY_HEADER: idempotency_key,
    }


def verify(
    headers: Mapping[str, str], body: bytes, secrets: Sequence[str], now: datetime | float, tolerance: int = 300
) -> bool:
    """True when the request was signed with one of `secrets` within `tolerance` seconds of `now`.

    `headers` may be any mapping (a dict, Flask's or http.server's headers); names are matched case-insensitively.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    raw_timestamp = lowered.get(TIMESTAMP_HEADER.lower(), "")
    presented = lowered.get(SIGNATURE_HEADER.lower(), "")
    if not raw_timestamp.strip().isdigit() or not presented.startswith(SCHEME):
        return False
    timestamp = int(raw_timestamp)
    current = now.timestamp() if isinstance(now, datetime) else float(now)
    if abs(current - timestamp) > tolerance:
        return False
    return any(hmac.compare_digest(signature(body, secret, timestamp), presented) for secret in secrets if secret)
