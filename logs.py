"""Logging set-up with redaction: no full phone number, PIN or USSD input reaches a log line.

Redaction happens in a filter on the root handler, so a careless `logger.info("%s", phone)` anywhere is still
masked. Phone numbers keep their last three digits (enough to help support staff, not enough to identify).
"""

from __future__ import annotations

import logging
import re
import uuid

PHONE_PATTERN = re.compile(r"\+?\d[\d ]{7,}(\d{3})")
SECRET_QUERY_PATTERN = re.compile(r"((?:text|token)=)[^&\s]*")  # AT's cumulative input (holds PINs), webhook tokens
BOT_TOKEN_PATTERN = re.compile(r"(/bot)\d+:[A-Za-z0-9_-]+")  # Telegram Bot API URLs carry the bot token
CHATTY_LIBRARIES = ("httpx", "httpcore", "telegram", "urllib3")  # they log request URLs, credentials included


def mask_phone(phone: str | None) -> str:
    """'+254700000002' -> '+…002'."""
    if not phone:
        return "-"
    digits = re.sub(r"\D", "", phone)
    return "+…" + digits[-3:] if len(digits) > 3 else "…"


def log_unexpected_error(log: logging.Logger, path: str) -> dict[str, str]:
    """Log the exception being handled with a fresh correlation id; returns the body to answer with, which names the
    id and nothing of the error (no trace reaches the caller)."""
    correlation_id = uuid.uuid4().hex[:12]
    log.exception("unhandled error on %s [correlation %s]", path, correlation_id)
    return {"error": "internal error", "correlation_id": correlation_id}


def redact(message: str) -> str:
    message = SECRET_QUERY_PATTERN.sub(r"\1[redacted]", message)
    message = BOT_TOKEN_PATTERN.sub(r"\1[redacted]", message)
    return PHONE_PATTERN.sub(lambda m: "+…" + m.group(1), message)


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            rendered = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string must not break logging
            rendered = str(record.msg)
        record.msg = redact(rendered)
        record.args = None
        return True


def configure_logging(level: str = "INFO") -> None:
    root = logging.getLogger()
    if not any(isinstance(f, RedactingFilter) for h in root.handlers for f in h.filters):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        handler.addFilter(RedactingFilter())
        root.addHandler(handler)
    root.setLevel(level.upper())
    for name in CHATTY_LIBRARIES:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
