"""The OpenAPI 3.1 document of `/api/v1`, written by hand as data so it reads like the contract it is.

Served at `GET /api/v1/openapi.json`; tests/integration/test_api_schemathesis.py checks the running API against it.
"""

from __future__ import annotations

from typing import Any

NULLABLE_STRING = {"type": ["string", "null"]}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


RATE_LIMITED = {
    **_error("Too many requests with this key in the current minute"),
    "headers": {"Retry-After": {"description": "Seconds until the window resets", "schema": {"type": "integer"}}},
}
COMMON_ERRORS = {
    "401": _error("Missing, malformed, unknown or revoked API key"),
    "403": _error("The key's scope does not allow this endpoint"),
    "429": RATE_LIMITED,
}
CLIENT_ERRORS = {**COMMON_ERRORS, "404": _error("No such client, or not visible to this key (same answer)")}
EXTERNAL_ID = {
    "name": "external_id",
    "in": "path",
    "required": True,
    "description": "The MFI's client id",
    "example": "C1",
    "schema": {"type": "string", "minLength": 1, "maxLength": 64},
}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error", "detail"],
        "properties": {"error": {"type": "string"}, "detail": {}},
    },
    "PovertyStatus": {
        "type": ["object", "null"],
        "required": ["scorecard_id", "band", "date_collected"],
        "properties": {
            "scorecard_id": NULLABLE_STRING,
            "band": NULLABLE_STRING,
            "date_collected": {"type": "string", "format": "date"},
        },
    },
    "ClientProfile": {
        "type": "object",
        "required": ["external_id", "display_name", "office", "poverty_status"],
        "properties": {
            "external_id": {"type": "string"},
            "display_name": {"type": "string", "description": "First name and initial of the last name"},
            "office": NULLABLE_STRING,
            "poverty_status": _ref("PovertyStatus"),
        },
    },
    "ClientPage": {
        "type": "object",
        "required": ["items", "page", "per_page", "total"],
        "properties": {
            "items": {"type": "array", "items": _ref("ClientProfile")},
            "page": {"type": "integer", "minimum": 1},
            "per_page": {"type": "integer", "minimum": 1},
            "total": {"type": "integer", "minimum": 0},
        },
    },
    "Survey": {
        "type": "object",
        "required": ["date_collected", "scorecard_id", "headline_line", "headline_score", "band", "lines"],
        "properties": {
            "date_collected": {"type": "string", "format": "date"},
            "scorecard_id": {"type": "string"},
            "headline_line": NULLABLE_STRING,
            "headline_score": {"type": ["integer", "null"]},
            "headline_likelihood": {"type": ["number", "null"]},
            "band": NULLABLE_STRING,
            "lines": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["line", "score", "likelihood"],
                    "properties": {
                        "line": {"type": "string"},
                        "score": {"type": "integer"},
                        "likelihood": {"type": "number", "description": "Poverty likelihood, 0 to 1"},
                    },
                },
            },
        },
    },
    "SurveyHistory": {
        "type": "object",
        "required": ["external_id", "surveys"],
        "properties": {"external_id": {"type": "string"}, "surveys": {"type": "array", "items": _ref("Survey")}},
    },
    "ConsentEvent": {
        "type": "object",
        "required": ["id", "purpose", "lender", "granted", "text_version", "language", "channel", "recorded_at"],
        "properties": {
            "id": {"type": "integer"},
            "purpose": {"type": "string"},
            "lender": {**NULLABLE_STRING, "description": "null: every lender"},
            "granted": {"type": "boolean"},
            "text_version": {"type": "string"},
            "language": {"type": "string"},
            "channel": {"type": "string"},
            "provider_message_id": NULLABLE_STRING,
            "officer": {**NULLABLE_STRING, "description": "Staff external id for consent collected on paper"},
            "recorded_at": {"type": "string", "format": "date-time"},
        },
    },
    "ConsentHistory": {
        "type": "object",
        "required": ["external_id", "events"],
        "properties": {"external_id": {"type": "string"}, "events": {"type": "array", "items": _ref("ConsentEvent")}},
    },
    "PaperConsent": {
        "type": "object",
        "required": ["granted", "officer"],
        "properties": {
            "granted": {"type": "boolean"},
            "officer": {"type": "string", "description": "Staff external id, e.g. S001"},
            "lender": {**NULLABLE_STRING, "description": "Only for this lender; omit for every lender"},
            "language": {**NULLABLE_STRING, "description": "Language the consent text was read in"},
        },
    },
    "ActivationCode": {
        "type": "object",
        "required": ["external_id", "code", "expires_at"],
        "properties": {
            "external_id": {"type": "string"},
            "code": {"type": "string", "description": "One-time code; shown only in this response"},
            "expires_at": {"type": ["string", "null"], "format": "date-time"},
        },
    },
    "Unlocked": {
        "type": "object",
        "required": ["external_id", "unlocked"],
        "properties": {"external_id": {"type": "string"}, "unlocked": {"const": True}},
    },
    "Band": {
        "type": "object",
        "required": ["low", "high", "label"],
        "properties": {"low": {"type": "integer"}, "high": {"type": "integer"}, "label": {"type": "string"}},
    },
    "PpiSettings": {
        "type": "object",
        "required": ["scorecard_id", "status", "headline_line", "bands", "bands_text", "show_band_to_client"],
        "properties": {
            "scorecard_id": {"type": "string"},
            "status": {"enum": ["active", "inactive"]},
            "headline_line": {"type": "string"},
            "bands": {"type": ["array", "null"], "items": _ref("Band")},
            "bands_text": NULLABLE_STRING,
            "show_band_to_client": {"type": "boolean"},
        },
    },
    "PpiSettingsUpdate": {
        "type": "object",
        "required": ["scorecard_id", "headline_line"],
        "properties": {
            "scorecard_id": {"type": "string", "examples": ["KEN-2024"]},
            "status": {"enum": ["active", "inactive"], "default": "active"},
            "headline_line": {"type": "string"},
            "bands": {
                **NULLABLE_STRING,
                "description": "Left out: the stored bands stay. Empty or null: no bands.",
                "examples": ["0-24:Very poor,25-49:Poor,50-100:Better off"],
            },
            "show_band_to_client": {"type": ["boolean", "null"], "description": "null keeps the current choice"},
        },
    },
    "Transition": {
        "type": "object",
        "required": ["from", "to", "clients"],
        "properties": {"from": {"type": "string"}, "to": {"type": "string"}, "clients": {"type": "integer"}},
    },
    "Cell": {
        "type": "object",
        "description": "One group in one period; a suppressed cell (under k clients) carries no numbers",
        "required": ["level", "group", "period", "suppressed"],
        "properties": {
            "level": {"type": "string"},
            "group": {
                "type": "object",
                "required": ["id", "name"],
                "properties": {"id": {"type": "string"}, "name": {"type": "string"}},
            },
            "period": {"type": "string"},
            "suppressed": {"type": "boolean"},
            "clients": {"type": "integer"},
            "surveys": {"type": "integer"},
            "mean_score": {"type": ["number", "null"]},
            "poverty_rate": {"type": "object", "additionalProperties": {"type": "number"}},
            "band_counts": {"type": "object", "additionalProperties": {"type": "integer"}},
            "band_transitions": {
                "type": "object",
                "properties": {
                    "since_first_survey": {"type": "array", "items": _ref("Transition")},
                    "from_previous_period": {"type": "array", "items": _ref("Transition")},
                },
            },
        },
    },
    "Aggregates": {
        "type": "object",
        "required": ["level", "period_kind", "k", "cells"],
        "properties": {
            "level": {"type": "string"},
            "period_kind": {"enum": ["month", "quarter", "year"]},
            "k": {"type": "integer", "description": "Cells with fewer clients are suppressed"},
            "cells": {"type": "array", "items": _ref("Cell")},
        },
    },
}


def _body(schema: str, example: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": _ref(schema), "example": example}}}


def _operation(summary: str, scopes: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"summary": summary, "description": f"Scopes: {scopes}.", "responses": responses, **extra}


def _paths() -> dict[str, Any]:
    page_parameters = [
        {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100000, "default": 1}},
        {
            "name": "per_page",
            "in": "query",
            "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
        },
    ]
    bad_request = {"400": _error("Invalid parameters or body")}
    return {
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "security": [],
                "responses": {"200": {"description": "The OpenAPI document", "content": {"application/json": {}}}},
            }
        },
        "/clients": {
            "get": _operation(
                "Clients visible to the key, by external id",
                "admin (all clients), lender (consenting clients in its funds/offices)",
                {"200": _json(_ref("ClientPage"), "One page of client profiles"), **bad_request, **COMMON_ERRORS},
                parameters=page_parameters,
            )
        },
        "/clients/{external_id}": {
            "parameters": [EXTERNAL_ID],
            "get": _operation(
                "A client's minimal profile and poverty status",
                "admin, lender",
                {"200": _json(_ref("ClientProfile"), "The profile"), **CLIENT_ERRORS},
            ),
        },
        "/clients/{external_id}/surveys": {
            "parameters": [EXTERNAL_ID],
            "get": _operation(
                "The client's PPI history, oldest first (never the answers)",
                "admin, lender",
                {"200": _json(_ref("SurveyHistory"), "Surveys with the likelihood per poverty line"), **CLIENT_ERRORS},
            ),
        },
        "/clients/{external_id}/consent": {
            "parameters": [EXTERNAL_ID],
            "get": _operation(
                "The client's consent history (the append-only ledger), oldest first",
                "admin",
                {"200": _json(_ref("ConsentHistory"), "Every consent event"), **CLIENT_ERRORS},
            ),
            "post": _operation(
                "Record consent an officer collected on paper",
                "admin",
                {"201": _json(_ref("ConsentEvent"), "The recorded event"), **bad_request, **CLIENT_ERRORS},
                requestBody=_body("PaperConsent", {"granted": True, "officer": "S001"}),
            ),
        },
        "/clients/{external_id}/activation-code": {
            "parameters": [EXTERNAL_ID],
            "post": _operation(
                "Issue a one-time activation code (earlier codes stop working)",
                "admin",
                {
                    "201": _json(_ref("ActivationCode"), "The new code"),
                    "409": _error("The client already has a PIN: reset it first"),
                    **CLIENT_ERRORS,
                },
            ),
        },
        "/clients/{external_id}/unlock": {
            "parameters": [EXTERNAL_ID],
            "post": _operation(
                "Lift a PIN lock (the PIN is kept)",
                "admin",
                {"200": _json(_ref("Unlocked"), "Unlocked"), **CLIENT_ERRORS},
            ),
        },
        "/aggregates": {
            "get": _operation(
                "Poverty aggregates per group and period, with small cells suppressed",
                "admin, portal, lender (limited to its funds and offices, counting only clients who share with it)",
                {
                    "200": _json(_ref("Aggregates"), "Cells ordered by group then period"),
                    **bad_request,
                    "503": _error("The stored surveys cannot be aggregated until the MFI acts (e.g. ppi reband)"),
                    **COMMON_ERRORS,
                },
                parameters=[
                    {
                        "name": "level",
                        "in": "query",
                        "description": "An office level (e.g. branch), officer, fund, product or all",
                        "schema": {"type": "string", "default": "branch"},
                    },
                    {
                        "name": "period",
                        "in": "query",
                        "description": "One period: 2026-Q3, 2026-07 or 2026; omit for every period",
                        "schema": {"type": "string", "pattern": r"^\d{4}(-Q[1-4]|-(0[1-9]|1[0-2]))?$"},
                    },
                    {
                        "name": "period_kind",
                        "in": "query",
                        "description": "Without `period`: group by month, quarter or year",
                        "schema": {"enum": ["month", "quarter", "year"], "default": "quarter"},
                    },
                ],
            )
        },
        "/ppi/settings": {
            "get": _operation(
                "The MFI's PPI settings",
                "admin",
                {"200": _json(_ref("PpiSettings"), "The settings"), "404": _error("Not configured"), **COMMON_ERRORS},
            ),
            "put": _operation(
                "Change the PPI settings (new surveys use them; old ones keep theirs)",
                "admin",
                {"200": _json(_ref("PpiSettings"), "The saved settings"), **bad_request, **COMMON_ERRORS},
                requestBody=_body(
                    "PpiSettingsUpdate",
                    {
                        "scorecard_id": "KEN-2024",
                        "headline_line": "absolute-poverty-line",
                        "bands": "0-49:Poor,50-100:Other",
                    },
                ),
            ),
        },
    }


def document() -> dict[str, Any]:
    """The whole OpenAPI document."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "impact-connect API",
            "version": "1.0.0",
            "description": (
                "Client PPI data for lenders (only clients who consent, within the key's funds and offices), "
                "aggregates with small-cell suppression, and admin actions. Errors are JSON "
                '`{"error": "...", "detail": ...}`. A lender key sees a client when the latest share_with_lenders '
                "consent event concerning its lender (or any lender) is a grant."
            ),
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearerAuth": []}],
        "paths": _paths(),
        "components": {
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "description": "An API key: ick_<prefix>_<secret>"}
            },
            "schemas": SCHEMAS,
        },
    }
