"""The one error type of the API and its JSON shape: `{"error": "...", "detail": ...}` with an HTTP status.

Views and helpers raise `ApiProblem`; the blueprint turns it into a response, so no view builds error JSON by hand.
"""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify


class ApiProblem(Exception):
    """An expected failure the caller can act on: bad input (400), no key (401), wrong scope (403), ..."""

    def __init__(
        self, status: int, error: str, detail: Any = None, *, headers: dict[str, str | int] | None = None
    ) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = headers or {}

    def response(self) -> Response:
        response = jsonify(error=self.error, detail=self.detail)
        response.status_code = self.status
        for name, value in self.headers.items():
            response.headers[name] = str(value)
        return response


NOT_FOUND = "not found"


def not_found(detail: str = "no such client") -> ApiProblem:
    """The same 404 for unknown ids and for clients the caller may not see, so the two cannot be told apart."""
    return ApiProblem(404, NOT_FOUND, detail)
