"""The status page and HTTP API: a FastAPI app served by uvicorn on its own thread and
event loop, so nothing it does can block the listen loop (which never waits on it)."""
from __future__ import annotations

import logging
import socket
import threading
import time
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..config import WebSettings
from . import api, voices_api
from .metrics import Metrics
from .security import TOKEN_COOKIE, GuardMiddleware, check_bind, token_ok
from .sse import Streams

log = logging.getLogger(__name__)
FRONT_END = Path(__file__).resolve().parents[2] / "front_end"
FILES = {"/": ("index.html", "text/html"), "/style.css": ("style.css", "text/css"),
         "/script.js": ("script.js", "text/javascript"), "/favicon.svg": ("favicon.svg", "image/svg+xml")}
# The page needs nothing but its own origin (and blob: for recorded audio).
PAGE_HEADERS = {"Content-Security-Policy": "default-src 'self'; media-src 'self' blob:; img-src 'self' data:; "
                                           "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
                "Cache-Control": "no-cache"}


def _error(status: int, message: str, headers=None, **extra) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status, headers=headers)


def create_app(daemon, web: WebSettings) -> FastAPI:
    check_bind(web)
    # FastAPIOffline serves Swagger UI's own files from the package: /docs works offline.
    @asynccontextmanager
    async def lifespan(app):
        yield
        app.state.close()   # uvicorn is stopping: end the event streams, drop the metrics subscription

    app = FastAPIOffline(title="voiced", version=__version__, docs_url="/docs", redoc_url=None,
                         static_url="/docs-assets", lifespan=lifespan,
                         description="The voice daemon's HTTP API. Errors are JSON `{\"error\": \"...\"}`. "
                                     "The schema is also at /openapi.json.")
    state = app.state
    state.daemon, state.web = daemon, web
    state.replies = api.ReplyStore(web.keep_replies)
    state.metrics = Metrics(daemon)
    state.streams = Streams(daemon.events, state.metrics)

    def close() -> None:
        state.streams.close_all()
        state.metrics.close()
    state.close = close

    @app.exception_handler(api.ApiError)
    async def _api_error(_request, exc: api.ApiError):
        return _error(exc.status, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request, exc: StarletteHTTPException):
        message = exc.detail if isinstance(exc.detail, str) else "request refused"
        if exc.status_code == 404:
            message = "no such page or endpoint (see /docs)"
        elif message == "There was an error parsing the body":   # FastAPI's words for undecodable bytes
            message = "the request body could not be parsed (JSON bodies must be UTF-8)"
        return _error(exc.status_code, message, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request, exc: RequestValidationError):
        details = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))} for e in exc.errors()]
        summary = "; ".join(f"{'.'.join(d['loc'])}: {d['msg']}" for d in details[:5])
        return _error(422, f"invalid request: {summary}", details=details)

    @app.exception_handler(Exception)
    async def _crash(_request, exc: Exception):
        log.exception("web request failed")
        return _error(500, f"internal error ({type(exc).__name__}); see the daemon's log")

    app.include_router(api.router)
    app.include_router(voices_api.router)
    for route, (name, media_type) in FILES.items():
        app.add_api_route(route, _page_file(name, media_type, web), methods=["GET"], include_in_schema=False)
    app.add_middleware(GuardMiddleware, web=web)
    return app


def _page_file(name: str, media_type: str, web: WebSettings):
    path = FRONT_END / name

    async def serve(request: Request):
        given = request.query_params.get("token")
        if given is not None and name == "index.html" and web.token:
            if not token_ok(web.token, given):
                return _error(401, "wrong token")
            # Keep it in a cookie so the page's own requests (EventSource, <audio>) carry it.
            response = RedirectResponse("/", status_code=303)
            response.set_cookie(TOKEN_COOKIE, given, httponly=True, samesite="strict", path="/")
            return response
        if not path.is_file():
            return _error(404, f"the status page's files are missing ({path})")
        return FileResponse(path, media_type=media_type, headers=PAGE_HEADERS)
    serve.__name__ = f"page_{name.replace('.', '_')}"
    return serve


class WebServer:
    """A running server: `url`, and `stop()` (ends event streams, then uvicorn)."""

    def __init__(self, app, server, thread: threading.Thread, url: str):
        self.app, self.server, self.thread, self.url = app, server, thread, url

    def stop(self, timeout: float = 5.0) -> None:
        self.app.state.close()
        self.server.should_exit = True
        self.thread.join(timeout)


def start_web_server(daemon, web: WebSettings, ready_timeout: float = 10.0) -> WebServer:
    """Bind now (a port in use is an error the caller sees), then serve on a thread."""
    import uvicorn

    app = create_app(daemon, web)
    family = socket.AF_INET6 if ":" in web.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((web.host, web.port))
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot serve the status page on {web.host}:{web.port}: {exc.strerror} "
                                 "(is another voiced running? change [web] port)") from None
    sock.listen(64)
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on", ws="none",
                            timeout_graceful_shutdown=2, server_header=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="web", daemon=True)
    thread.start()
    deadline = time.monotonic() + ready_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the web server did not start on {web.host}:{web.port}")
        time.sleep(0.02)
    host = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(web.host, f"[{web.host}]" if ":" in web.host else web.host)
    url = f"http://{host}:{web.port}/"
    log.info("status page and API on %s%s", url, " (token required)" if web.token else "")
    return WebServer(app, server, thread, url)
