"""The Flask application factory: builds the services and registers the blueprints, nothing else."""

from __future__ import annotations

import logging

from flask import Blueprint, Flask, Request, Response, jsonify, request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

import bootstrap
from gateway.ussd_wsgi import UssdWebhook
from logs import configure_logging, log_unexpected_error
from settings import Settings

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'; "
        "frame-ancestors 'none'"
    ),
}


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    configure_logging(settings.log_level)
    services = bootstrap.build(settings)

    app = Flask(__name__, instance_relative_config=True)
    app.config.update(SECRET_KEY=settings.secret_key, JSON_SORT_KEYS=False, MAX_CONTENT_LENGTH=1024 * 1024)
    app.extensions["services"] = services
    app.extensions["settings"] = settings

    for blueprint in _blueprints():
        app.register_blueprint(blueprint)
    app.session_interface = _NoSessionOnWebhooks(_webhook_prefix())

    app.after_request(_security_headers)
    app.register_error_handler(Exception, _unexpected_error)
    # The USSD webhook's ordinary hops are answered before Flask, by the same gateway code (see gateway/ussd_wsgi.py).
    app.wsgi_app = UssdWebhook(  # type: ignore[method-assign]
        app.wsgi_app,
        services,
        path=_ussd_webhook_path(),
        max_body_bytes=app.config["MAX_CONTENT_LENGTH"],
        headers=SECURITY_HEADERS,
    )
    if settings.proxy_hops:
        # Behind a load balancer the peer is the proxy: take the client's address (limits, logs) and the public
        # scheme and host (Twilio's signed URL) from the headers the trusted proxies set, and from no one else.
        hops = settings.proxy_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
    return app


def _blueprints() -> list[Blueprint]:
    """Every HTTP surface, in one explicit list."""
    import api.views
    import feeds.views
    import gateway.views
    import health
    import simulator.views

    return [
        health.blueprint,
        gateway.views.blueprint,
        api.views.blueprint,
        feeds.views.blueprint,
        simulator.views.blueprint,
    ]


def _webhook_prefix() -> str:
    import gateway.views

    return f"{gateway.views.blueprint.url_prefix}/"


def _ussd_webhook_path() -> str:
    import gateway.views

    return f"{gateway.views.blueprint.url_prefix}{gateway.views.USSD_ROUTE}"


class _NoSessionOnWebhooks(SecureCookieSessionInterface):
    """Providers call the webhooks with no cookie and need no session: skipping the signed-cookie machinery there
    saves work on every USSD hop. /impact and the simulator keep their sessions. (The session opens before the URL
    is matched, so the webhooks are known by their blueprint's path prefix.)"""

    def __init__(self, webhook_prefix: str) -> None:
        self.webhook_prefix = webhook_prefix

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if request.path.startswith(self.webhook_prefix):
            return self.make_null_session(app)
        return super().open_session(app, request)


def _security_headers(response: Response) -> Response:
    """Each security header the view did not set itself. One pass over the response's few headers: werkzeug's
    `setdefault` raises and catches a KeyError for every header missing, which cost a tenth of a millisecond on
    every response (3% of a USSD hop)."""
    present = {name.lower() for name, _ in response.headers}
    for name, value in SECURITY_HEADERS.items():
        if name.lower() not in present:
            response.headers.add(name, value)
    return response


def _unexpected_error(error: Exception) -> Response | tuple[Response, int]:
    if isinstance(error, HTTPException):
        return error  # type: ignore[return-value]
    return jsonify(log_unexpected_error(logging.getLogger(__name__), request.path)), 500
