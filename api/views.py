"""The `/api/v1` JSON API: client profiles and PPI history for lenders, aggregates for everyone, admin actions.

Every request except `GET /api/v1/openapi.json` needs `Authorization: Bearer ick_...` (see api.auth). Scopes:
admin sees and does everything; portal sees aggregates only; lender sees the clients `api.visibility` allows and
aggregates limited to its funds and offices. A client a caller may not see answers exactly like an unknown one
(404). Every lender request leaves an `ApiAccessLog` row naming the clients it returned.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException

from accounts.models import Client, Office
from api.auth import caller_for
from api.errors import ApiProblem, not_found
from api.keys import Caller
from api.models import ApiAccessLog
from api.openapi import document
from api.visibility import aggregate_scope, visible_clients
from bootstrap import Services
from consent import service as consent
from db import utcnow

blueprint = Blueprint("api", __name__, url_prefix="/api/v1")

ADMIN = ("admin",)
CLIENT_READERS = ("admin", "lender")
EVERYONE = ("admin", "portal", "lender")
MAX_PER_PAGE = 200
MAX_PAGE = 100_000
_NUMBER = re.compile(r"^[0-9]{1,7}$")
_PERIOD_KINDS = {
    re.compile(r"^\d{4}-Q[1-4]$"): "quarter",
    re.compile(r"^\d{4}-(0[1-9]|1[0-2])$"): "month",
    re.compile(r"^\d{4}$"): "year",
}


# --- plumbing ----------------------------------------------------------------------------------------------------


def _services() -> Services:
    return current_app.extensions["services"]  # type: ignore[no-any-return]


@blueprint.before_request
def _authenticate() -> None:
    if request.endpoint == "api.openapi_document":
        return
    g.api_caller = caller_for(
        _services(), request.headers.get("Authorization"), now=utcnow(), address=request.remote_addr
    )


@blueprint.errorhandler(ApiProblem)
def _problem(problem: ApiProblem) -> Response:
    return problem.response()


@blueprint.errorhandler(HTTPException)
def _http_error(error: HTTPException) -> Response:
    response = ApiProblem(error.code or 500, (error.name or "error").lower(), error.description).response()
    for name, value in error.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value  # e.g. Allow on 405
    return response


@blueprint.app_errorhandler(404)
@blueprint.app_errorhandler(405)
def _routing_error(error: HTTPException) -> Response | HTTPException:
    """Unknown paths and methods under /api/ answer in JSON too; elsewhere Flask's own page is kept."""
    if not request.path.startswith(blueprint.url_prefix or "/api/v1"):
        return error
    return _http_error(error)


def _require(scopes: tuple[str, ...]) -> Caller:
    caller: Caller = g.api_caller
    if caller.scope not in scopes:
        raise ApiProblem(403, "forbidden", f"{caller.scope} keys cannot use this endpoint")
    return caller


def _log_access(session: Session, caller: Caller, client_ids: list[int]) -> None:
    if caller.is_lender:
        endpoint = f"{request.method} {request.full_path.rstrip('?')}"[:200]
        session.add(ApiAccessLog(api_key_id=caller.key_id, endpoint=endpoint, client_ids=client_ids, at=utcnow()))


def _text(value: object, name: str, *, max_length: int = 64, required: bool = False) -> str | None:
    """A clean string from user input, or ApiProblem 400: no NUL, no lone surrogates, bounded length."""
    if value is None:
        if required:
            raise ApiProblem(400, "invalid request", f"{name} is required")
        return None
    if not isinstance(value, str) or not _storable(value) or not 0 < len(value) <= max_length:
        raise ApiProblem(400, "invalid request", f"{name} must be a string of 1 to {max_length} characters")
    return value


def _storable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in value


def _json_body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiProblem(400, "invalid request", "the body must be a JSON object")
    return body


def _flag(body: dict[str, Any], name: str, *, required: bool = False) -> bool | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, bool):
        raise ApiProblem(400, "invalid request", f"{name} must be true or false")
    return value


def _whole_number(name: str, default: int, highest: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not _NUMBER.match(raw) or not 1 <= int(raw) <= highest:
        raise ApiProblem(400, "invalid request", f"{name} must be a whole number from 1 to {highest}")
    return int(raw)


# --- the document ------------------------------------------------------------------------------------------------


@blueprint.get("/openapi.json")
def openapi_document() -> Response:
    return jsonify(document())


# --- clients -----------------------------------------------------------------------------------------------------


@blueprint.get("/clients")
def list_clients() -> Response:
    caller = _require(CLIENT_READERS)
    page = _whole_number("page", 1, MAX_PAGE)
    per_page = _whole_number("per_page", 50, MAX_PER_PAGE)
    with _services().transaction() as session:
        visible = visible_clients(session, caller).subquery()
        total = session.scalar(select(func.count()).select_from(visible)) or 0
        rows = session.execute(
            select(Client, Office.name)
            .join(Office, Office.id == Client.office_id)
            .where(Client.id.in_(select(visible.c.id)))
            .order_by(Client.external_id)
            .limit(per_page)
            .offset((page - 1) * per_page)
        ).all()
        _log_access(session, caller, [client.id for client, _ in rows])
        items = [_profile(client, office_name) for client, office_name in rows]
    return jsonify(items=items, page=page, per_page=per_page, total=total)


@blueprint.get("/clients/<path:external_id>")  # path: external ids may hold "/" (KE/001/23)
def get_client(external_id: str) -> Response:
    caller = _require(CLIENT_READERS)
    return jsonify(_read_client(caller, external_id, _client_profile))


@blueprint.get("/clients/<path:external_id>/surveys")
def get_client_surveys(external_id: str) -> Response:
    caller = _require(CLIENT_READERS)
    return jsonify(_read_client(caller, external_id, _survey_history))


def _read_client(caller: Caller, external_id: str, render: Callable[[Session, Client], dict[str, Any]]) -> Any:
    """Render a client the caller may see, log the access (also when nothing is returned), else 404."""
    with _services().transaction() as session:
        client = _find_visible(session, caller, external_id)
        body = render(session, client) if client is not None else None
        _log_access(session, caller, [client.id] if client is not None else [])
    if body is None:
        raise not_found()
    return body


def _find_visible(session: Session, caller: Caller, external_id: str) -> Client | None:
    if not _storable(external_id) or len(external_id) > 64:
        return None
    return session.scalar(visible_clients(session, caller).where(Client.external_id == external_id))


def _client_profile(session: Session, client: Client) -> dict[str, Any]:
    office = session.get(Office, client.office_id)
    return _profile(client, office.name if office else None)


def _profile(client: Client, office_name: str | None) -> dict[str, Any]:
    """The minimal profile: no phone, no full surname, no officer."""
    status = None
    if client.poverty_date is not None:
        status = {
            "scorecard_id": client.poverty_scorecard_id,
            "band": client.poverty_band,
            "date_collected": client.poverty_date.isoformat(),
        }
    return {
        "external_id": client.external_id,
        "display_name": display_name(client.name),
        "office": office_name,
        "poverty_status": status,
    }


def display_name(full_name: str) -> str:
    """'Amina Wanjiru Otieno' -> 'Amina O.': first name and the initial of the last name."""
    parts = full_name.split()
    if not parts:
        return ""
    if len(parts) == 1:
        return parts[0]
    return f"{parts[0]} {parts[-1][0]}."


def _survey_history(session: Session, client: Client) -> dict[str, Any]:
    from surveys.service import client_surveys

    surveys = [
        {
            "date_collected": survey.date_collected.isoformat(),
            "scorecard_id": survey.scorecard_id,
            "headline_line": survey.headline_line,
            "headline_score": survey.headline_score,
            "headline_likelihood": survey.headline_likelihood,
            "band": survey.band,
            "lines": [
                {"line": line.line_slug, "score": line.score, "likelihood": line.likelihood}
                for line in sorted(survey.line_results, key=lambda result: result.line_slug)
            ],
        }
        for survey in client_surveys(session, client.id)
    ]
    return {"external_id": client.external_id, "surveys": surveys}


# --- admin actions on a client -----------------------------------------------------------------------------------


def _admin_client(session: Session, external_id: str) -> Client:
    client = _find_visible(session, g.api_caller, external_id)
    if client is None:
        raise not_found()
    return client


@blueprint.get("/clients/<path:external_id>/consent")
def get_client_consent(external_id: str) -> Response:
    _require(ADMIN)
    with _services().transaction() as session:
        client = _admin_client(session, external_id)
        events = consent.history_export(session, client.id)
    return jsonify(external_id=client.external_id, events=events)


@blueprint.post("/clients/<path:external_id>/consent")
def record_client_consent(external_id: str) -> tuple[Response, int]:
    _require(ADMIN)
    body = _json_body()
    granted = _flag(body, "granted", required=True)
    officer = _text(body.get("officer"), "officer", required=True)
    lender = _text(body.get("lender"), "lender")
    language = _text(body.get("language"), "language", max_length=8)
    services = _services()
    with services.transaction() as session:
        client = _admin_client(session, external_id)
        try:
            event = consent.record_paper(
                session,
                client,
                granted=bool(granted),
                officer=str(officer),
                lender=lender,
                language=language,
                default_language=services.settings.default_locale,
                now=utcnow(),
            )
        except consent.ConsentError as exc:
            raise ApiProblem(400, "invalid request", str(exc)) from exc
        session.flush()
        recorded = next(item for item in consent.history_export(session, client.id) if item["id"] == event.id)
    return jsonify(recorded), 201


@blueprint.post("/clients/<path:external_id>/activation-code")
def issue_activation_code(external_id: str) -> tuple[Response, int]:
    caller = _require(ADMIN)
    from accounts.service import expiry_of_latest_code
    from accounts.service import issue_activation_code as issue

    services = _services()
    with services.transaction() as session:
        client = _admin_client(session, external_id)
        if client.pin_hash:
            raise ApiProblem(
                409,
                "client already has a PIN",
                "the dialogue asks this client for their PIN, never for a code: reset the PIN first "
                f"(impact-connect clients reset-pin {client.external_id} --officer ...)",
            )
        code = issue(
            session,
            client,
            issued_by=f"api:{caller.prefix}",
            now=utcnow(),
            ttl_hours=services.settings.activation_code_ttl_hours,
        )
        expires = expiry_of_latest_code(session, client.id)
    body = {"external_id": client.external_id, "code": code, "expires_at": expires.isoformat() if expires else None}
    return jsonify(body), 201


@blueprint.post("/clients/<path:external_id>/unlock")
def unlock_client(external_id: str) -> Response:
    caller = _require(ADMIN)
    from accounts.limiter import build_limiter
    from accounts.service import unlock

    services = _services()
    with services.transaction() as session:
        client = _admin_client(session, external_id)
        unlock(session, client, actor=f"api:{caller.prefix}", now=utcnow(), limiter=build_limiter(services))
    return jsonify(external_id=client.external_id, unlocked=True)


# --- aggregates --------------------------------------------------------------------------------------------------


@blueprint.get("/aggregates")
def aggregates() -> Response:
    caller = _require(EVERYONE)
    from feeds import stale
    from feeds.aggregates import AggregateError, AggregatesUnavailable, cells_to_json, compute

    level = _text(request.args.get("level", "branch"), "level") or "branch"
    period = _text(request.args.get("period"), "period", max_length=7)
    period_kind = _period_kind(period)
    services = _services()
    with services.transaction() as session:
        stale.catch_up(session)
        try:
            cells = compute(
                session,
                level=level,
                period_kind=period_kind,
                k=services.settings.suppression_k,
                periods=[period] if period else None,
                scope=aggregate_scope(caller),
            )
        except AggregatesUnavailable as exc:  # the stored data, not the request: worth retrying later
            raise ApiProblem(503, "aggregates unavailable", str(exc)) from exc
        except AggregateError as exc:
            raise ApiProblem(400, "invalid request", str(exc)) from exc
        _log_access(session, caller, [])
    return jsonify(level=level, period_kind=period_kind, k=services.settings.suppression_k, cells=cells_to_json(cells))


def _period_kind(period: str | None) -> str:
    if period is None:
        kind = request.args.get("period_kind", "quarter")
        if kind not in ("month", "quarter", "year"):
            raise ApiProblem(400, "invalid request", "period_kind must be month, quarter or year")
        return kind
    for pattern, kind in _PERIOD_KINDS.items():
        if pattern.match(period):
            return kind
    raise ApiProblem(400, "invalid request", "period must look like 2026-Q3, 2026-07 or 2026")


# --- PPI settings ------------------------------------------------------------------------------------------------


@blueprint.get("/ppi/settings")
def get_ppi_settings() -> Response:
    _require(ADMIN)
    from surveys.service import get_config

    with _services().transaction() as session:
        config = get_config(session)
    if config is None:
        raise ApiProblem(404, "not found", "PPI is not configured yet")
    return jsonify(_config_json(config))


@blueprint.put("/ppi/settings")
def put_ppi_settings() -> Response:
    _require(ADMIN)
    from surveys.service import SurveyError, configure

    body = _json_body()
    fields = {
        "scorecard_id": _text(body.get("scorecard_id"), "scorecard_id", max_length=32, required=True),
        "status": _text(body.get("status", "active"), "status", max_length=16, required=True),
        "headline_line": _text(body.get("headline_line"), "headline_line", required=True),
        "bands": _bands_field(body),
        "show_band_to_client": _flag(body, "show_band_to_client"),
    }
    with _services().transaction() as session:
        try:
            config = configure(session, now=utcnow(), **fields)  # type: ignore[arg-type]
        except SurveyError as exc:
            raise ApiProblem(400, "invalid request", str(exc)) from exc
    return jsonify(_config_json(config))


def _bands_field(body: dict[str, Any]) -> str | None:
    """Left out: the stored bands stay (None); "" or null removes them; else the bands' text."""
    if "bands" not in body:
        return None
    if body["bands"] in ("", None):
        return ""
    return _text(body["bands"], "bands", max_length=2000)


def _config_json(config: Any) -> dict[str, Any]:
    bands = [{"low": band.low, "high": band.high, "label": band.label} for band in config.bands or ()]
    return {
        "scorecard_id": config.scorecard_id,
        "status": config.status,
        "headline_line": config.headline_line,
        "bands": bands or None,
        "bands_text": config.bands_text() or None,
        "show_band_to_client": config.show_band_to_client,
    }
