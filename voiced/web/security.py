"""Who may talk to the daemon over HTTP: Host check (DNS rebinding), Origin check on writes
(cross-site requests from any page the user has open), an optional bearer token, and a cap on
request bodies. One pure ASGI middleware, so every route - docs and static files included -
is covered and a refused request never reaches the app."""
from __future__ import annotations

import hmac
import json
import re
import socket
from http.cookies import SimpleCookie
from ipaddress import ip_address

from ..config import WebSettings

TOKEN_COOKIE = "voiced_token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOCAL_NAMES = ("127.0.0.1", "localhost", "[::1]")
# Paths open without a token: liveness for monitors, and the page shell (it holds no data;
# its API calls need the token, and it tells the user how to give it).
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/", "/style.css", "/script.js", "/favicon.svg"})
MULTIPART_SLACK = 64 * 1024   # boundaries and part headers around the audio itself


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(web: WebSettings) -> None:
    """Refuse to serve a non-loopback address without a token (config validates it too)."""
    if not is_loopback(web.host) and len(web.token) < 16:
        raise ValueError(f"web.host = {web.host!r} is not loopback: web.token (16+ characters) is required")


def allowed_hosts(web: WebSettings) -> frozenset[str]:
    """Exact Host header values accepted (lower case, with the port, as browsers send it)."""
    names = set(LOCAL_NAMES)
    if web.host not in ("0.0.0.0", "::", ""):
        names.add(f"[{web.host}]" if ":" in web.host else web.host.lower())
    else:   # bound to every interface: the machine's own name is an obvious one to use
        names.add(socket.gethostname().lower())
    hosts = set()
    for entry in [*names, *(e.lower() for e in web.allowed_hosts)]:
        if re.search(r"(^[^:]*|\])(:\d+)$", entry):   # "name:port" (a reverse proxy): as given
            hosts.add(entry)
            continue
        hosts.add(f"{entry}:{web.port}")
        if web.port == 80:   # browsers leave the default port out
            hosts.add(entry)
    return frozenset(hosts)


def _headers(scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def presented_token(headers: dict[str, str]) -> str | None:
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    if "cookie" in headers:
        cookie = SimpleCookie()
        try:
            cookie.load(headers["cookie"])
        except Exception:  # noqa: BLE001 - a malformed cookie header is simply no token
            return None
        if TOKEN_COOKIE in cookie:
            return cookie[TOKEN_COOKIE].value
    return None


def token_ok(expected: str, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())


async def send_json(send, status: int, message: str, extra_headers: list | None = None) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + (extra_headers or [])})
    await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


class GuardMiddleware:
    def __init__(self, app, web: WebSettings):
        self.app = app
        self.web = web
        self.hosts = allowed_hosts(web)
        self.origins = {f"{scheme}://{h}" for h in self.hosts for scheme in ("http", "https")}
        self.body_limit = web.max_upload_bytes + MULTIPART_SLACK

    def refusal(self, scope, headers: dict[str, str]) -> tuple[int, str] | None:
        host = headers.get("host", "").lower()
        if host not in self.hosts:
            return 400, f"Host {host!r} is not accepted here (add it to [web] allowed_hosts if it is yours)"
        if scope["method"] in UNSAFE_METHODS:
            origin = headers.get("origin")
            if origin is not None and origin.lower() not in self.origins:
                return 403, f"cross-origin request from {origin!r} refused"
            if origin is None and headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
                return 403, "cross-site request refused"
        if self.web.token and scope["path"] not in OPEN_PATHS:
            if not token_ok(self.web.token, presented_token(headers)):
                return 401, "a valid token is required (Authorization: Bearer <token>, or open /?token=<token>)"
        return None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            if scope["type"] == "websocket":   # none are served; refuse before any handshake
                await send({"type": "websocket.close", "code": 1008})
                return
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        refused = self.refusal(scope, headers)
        if refused:
            extra = [(b"www-authenticate", b'Bearer realm="voiced"')] if refused[0] == 401 else None
            await send_json(send, *refused, extra_headers=extra)
            return
        too_large = f"request body over {self.web.max_upload_bytes} bytes ([web] max_upload_bytes)"
        try:
            declared = int(headers.get("content-length", "0"))
        except ValueError:
            declared = 0
        if declared > self.body_limit:
            await send_json(send, 413, too_large)
            return
        seen, over, started = 0, False, False

        async def limited_receive():
            nonlocal seen, over
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.body_limit:   # chunked uploads have no Content-Length to check
                    over = True
                    raise _TooLarge()
            return message

        async def guarded_send(message):
            nonlocal started
            if over:   # whatever the app made of the cut-off body, the answer is 413
                return
            started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _TooLarge:
            pass
        except Exception:   # the body error may come back wrapped (task groups, parse errors)
            if not over:
                raise
        if over and not started:
            await send_json(send, 413, too_large)
