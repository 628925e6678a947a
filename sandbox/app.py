"""Flask app factory: `/stubs/handler_api.php` (GET and POST) plus the control API."""
from __future__ import annotations

import time

from flask import Flask, Response, request

from .actions import dispatch
from .config import SandboxConfig
from .control import bp as control_bp
from .dialects import HTML, JSON, dump_json, render
from .engine import Engine

HTML_500 = ("<html>\r\n<head><title>500 Internal Server Error</title></head>\r\n<body>\r\n"
            "<center><h1>500 Internal Server Error</h1></center>\r\n<hr><center>nginx</center>\r\n"
            "</body>\r\n</html>\r\n")


def rate_limited(retry_after: int | None) -> Response:
    """HTTP 429 with a HeroSMS-style `RATE_LIMIT` title body and, when set, a Retry-After header (seconds)."""
    info = {} if retry_after is None else {"retryAfter": retry_after}
    body = dump_json({"title": "RATE_LIMIT", "details": "Too many requests", "info": info})
    response = Response(body, 429, content_type=JSON)
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


def create_app(config: SandboxConfig | None = None) -> Flask:
    """Build one sandbox: one emulated account, its own state and background threads."""
    config = config or SandboxConfig()
    app = Flask("sandbox")
    engine = Engine(config)
    app.extensions["sandbox"] = engine
    app.register_blueprint(control_bp)

    def handler_api() -> Response:
        mode = engine.consume_failure()
        if mode == "500":
            return Response(HTML_500, 500, content_type=HTML)
        if mode == "ERROR_SQL":
            return Response("ERROR_SQL", 200, content_type=HTML)
        if mode == "429":
            return rate_limited(engine.settings.retry_after)
        params = request.args.to_dict()
        if request.method == "POST" and request.form:
            params.update(request.form.to_dict())
        result = dispatch(engine, params, request.headers.get("Authorization"))
        if mode == "timeout":
            time.sleep(engine.settings.timeout_sleep)    # processed, but the answer comes too late
        if mode == "500_after":
            return Response(HTML_500, 500, content_type=HTML)
        body, status, content_type = render(result, engine.dialect)
        return Response(body, status, content_type=content_type)

    app.add_url_rule("/stubs/handler_api.php", "handler_api", handler_api, methods=["GET", "POST"])
    return app


def engine_of(app: Flask) -> Engine:
    """The Engine behind an app made by create_app (for tests and the CLI)."""
    return app.extensions["sandbox"]
