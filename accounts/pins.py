"""PIN and activation-code rules: what counts as a weak PIN, how secrets are hashed, how codes are made.

Pure functions over plain values (no database, no clock), so the rules are easy to test and the service module
only orchestrates. PINs and codes are hashed with argon2id; the plaintext never leaves the caller's stack frame.
Parameters: 19 MiB, 2 passes, 1 lane (the OWASP minimum for argon2id), about 20 ms per verification on one core,
which keeps a USSD hop fast on a 2-core box while making an offline guess of a 4-digit PIN cost real work.

One argon2 computation runs at a time per process (`_ARGON2_SLOT`). It is pure CPU, so a second one in the same
process would only share the cores with the first; serialising them bounds the memory a web process maps for them
to one 19 MiB block at a time. The Procfile's `MALLOC_MMAP_THRESHOLD_=1048576` returns that block to the system
after each verification, so a web process stays flat (bench/soak.py); it costs ~10 ms per verification to map and
zero the block again (30 ms instead of 20 ms), the price of not holding 19-80 MB per process (bench/README.md).
"""

from __future__ import annotations

import re
import secrets
import threading

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from locales import N_

PIN_LENGTH = 4
ACTIVATION_CODE_DIGITS = 6

HASHER = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1, hash_len=32, salt_len=16, type=Type.ID)
_ARGON2_SLOT = threading.Lock()

REASON_NOT_FOUR_DIGITS = N_("Your PIN must be exactly 4 digits.")
REASON_REPEATED = N_("Your PIN cannot be one digit repeated, like 0000. Choose another.")
REASON_SEQUENCE = N_("Your PIN cannot be a sequence like 1234 or 4321. Choose another.")
REASON_PHONE = N_("Your PIN cannot be the last 4 digits of your phone number. Choose another.")


def weak_pin_reason(pin: str, phone: str | None = None) -> str | None:
    """None when `pin` is acceptable, else the msgid explaining why it is refused."""
    if len(pin) != PIN_LENGTH or not pin.isascii() or not pin.isdigit():
        return REASON_NOT_FOUR_DIGITS
    if len(set(pin)) == 1:
        return REASON_REPEATED
    if _is_sequence(pin):
        return REASON_SEQUENCE
    if phone and re.sub(r"\D", "", phone)[-PIN_LENGTH:] == pin:
        return REASON_PHONE
    return None


def _is_sequence(pin: str) -> bool:
    steps = {int(b) - int(a) for a, b in zip(pin, pin[1:], strict=False)}
    return steps in ({1}, {-1})


def hash_secret(secret: str) -> str:
    with _ARGON2_SLOT:
        return HASHER.hash(secret)


def secret_matches(stored_hash: str | None, secret: str) -> bool:
    """True when `secret` hashes to `stored_hash`; False for a wrong secret, a missing or a corrupt hash."""
    if not stored_hash:
        return False
    try:
        with _ARGON2_SLOT:
            return HASHER.verify(stored_hash, secret)
    except (VerificationError, InvalidHashError):
        return False


def new_activation_code() -> str:
    """A uniformly random 6-digit one-time code (leading zeros kept)."""
    return f"{secrets.randbelow(10**ACTIVATION_CODE_DIGITS):0{ACTIVATION_CODE_DIGITS}d}"
