"""Effects: the IO the conversation engine asks the shell to do, as plain frozen dataclasses.

The engine is pure, so saving an answer, checking a PIN or fetching balances is described here and applied by
`conversations/service.py` in one DB transaction. Effects that need an answer (`needs_result = True`) leave the
engine waiting; the shell calls `advance` again with an `EffectResult(kind, data)`. The result kinds each effect
may produce are listed on the class. PINs and activation codes travel only inside these objects, never in state.
Question indexes are 0-based; option positions are 1-based, in the scorecard's published order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar


@dataclass(frozen=True)
class Effect:
    """Base class: `kind` names the effect for the shell's dispatch."""

    kind: ClassVar[str] = "effect"
    needs_result: ClassVar[bool] = False


@dataclass(frozen=True)
class SaveAnswer(Effect):
    """Save one answer to the durable draft (client_id, mode) right away. Result optional: "answer_saved"."""

    kind: ClassVar[str] = "save_answer"
    client_id: int
    question_index: int
    option_position: int
    scorecard_id: str = ""
    mode: str = "self"


@dataclass(frozen=True)
class DiscardDraft(Effect):
    """Delete the durable draft (client_id, mode): the user chose to start again. Result optional."""

    kind: ClassVar[str] = "discard_draft"
    client_id: int
    mode: str = "self"


@dataclass(frozen=True)
class SubmitSurvey(Effect):
    """Score and store the survey, then delete the draft. Results: "survey_submitted" {band, headline_score},
    or "service_unavailable"."""

    kind: ClassVar[str] = "submit_survey"
    needs_result: ClassVar[bool] = True
    client_id: int
    answers: tuple[int, ...]
    mode: str = "self"  # "officer": recorded as officer-assisted, with the calling officer
    scorecard_id: str = ""


@dataclass(frozen=True)
class FindClient(Effect):
    """Officer flow: look a client up by external id. Results: "client_found" {id, masked_name, draft?},
    "client_not_found"."""

    kind: ClassVar[str] = "find_client"
    needs_result: ClassVar[bool] = True
    external_id: str


@dataclass(frozen=True)
class CheckPinStatus(Effect):
    """Before a PIN-protected service: is the client's PIN set, and is it locked? Read only when a service asks for
    the PIN, not on every hop. Results: "pin_active", "pin_locked" {minutes}, "pin_needs_activation" (no PIN set)."""

    kind: ClassVar[str] = "check_pin_status"
    needs_result: ClassVar[bool] = True
    client_id: int


@dataclass(frozen=True)
class VerifyPin(Effect):
    """Results: "pin_ok", "pin_wrong" {attempts_left}, "pin_locked" {minutes}, "pin_needs_activation" (no PIN is
    set: an officer reset it since the session began)."""

    kind: ClassVar[str] = "verify_pin"
    needs_result: ClassVar[bool] = True
    client_id: int
    pin: str = field(repr=False)


@dataclass(frozen=True)
class ActivateAccount(Effect):
    """Check the activation code an officer gave the client. Results: "activation_ok", "activation_bad"."""

    kind: ClassVar[str] = "activate_account"
    needs_result: ClassVar[bool] = True
    client_id: int
    code: str = field(repr=False)


@dataclass(frozen=True)
class StagePin(Effect):
    """First entry of a new PIN: the shell checks its strength and keeps only a hash until it is confirmed, so the
    engine never holds the PIN between hops. Results: "pin_staged", "pin_rejected" {reason_msgid}."""

    kind: ClassVar[str] = "stage_pin"
    needs_result: ClassVar[bool] = True
    client_id: int
    pin: str = field(repr=False)


@dataclass(frozen=True)
class SetPin(Effect):
    """Confirmation of a new PIN after activation: set it if it matches the staged one.
    Results: "pin_set", "pin_mismatch", "pin_stage_expired" (the staged PIN is kept 5 minutes), "pin_rejected"
    {reason_msgid}."""

    kind: ClassVar[str] = "set_pin"
    needs_result: ClassVar[bool] = True
    client_id: int
    pin: str = field(repr=False)


@dataclass(frozen=True)
class ChangePin(Effect):
    """Like `SetPin`, for a client whose PIN is active and was verified this session."""

    kind: ClassVar[str] = "change_pin"
    needs_result: ClassVar[bool] = True
    client_id: int
    pin: str = field(repr=False)


@dataclass(frozen=True)
class FetchBalances(Effect):
    """Results: "lines" {lines: [str]}, "service_unavailable". A balance served from the last-known copy says so in
    its own line."""

    kind: ClassVar[str] = "fetch_balances"
    needs_result: ClassVar[bool] = True
    client_id: int


@dataclass(frozen=True)
class FetchStatement(Effect):
    """Results: "lines" {lines}, "service_unavailable"."""

    kind: ClassVar[str] = "fetch_statement"
    needs_result: ClassVar[bool] = True
    client_id: int


@dataclass(frozen=True)
class FetchProgress(Effect):
    """Results: "lines" {lines}, "service_unavailable"."""

    kind: ClassVar[str] = "fetch_progress"
    needs_result: ClassVar[bool] = True
    client_id: int


@dataclass(frozen=True)
class FetchConsentText(Effect):
    """Results: "consent_text" {text, what_is_shared, version, current: bool|None}, "service_unavailable"."""

    kind: ClassVar[str] = "fetch_consent_text"
    needs_result: ClassVar[bool] = True
    client_id: int


@dataclass(frozen=True)
class RecordConsent(Effect):
    """Append a grant or a revocation to the consent ledger. Result optional: "consent_recorded"."""

    kind: ClassVar[str] = "record_consent"
    client_id: int
    granted: bool
    version: str


@dataclass(frozen=True)
class SetLanguage(Effect):
    """Store the client's language. Result: "language_set"; the engine is then called with the new language's
    translator, so the confirmation reads in the language just chosen."""

    kind: ClassVar[str] = "set_language"
    needs_result: ClassVar[bool] = True
    client_id: int
    code: str
