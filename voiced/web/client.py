"""`voiced status` and `voiced trigger`: small clients of the running daemon's HTTP API
(urllib only, so they start fast and need none of the daemon's heavy imports)."""
from __future__ import annotations

import datetime as dt
import json
import sys
import urllib.error
import urllib.request

from ..config import WebSettings


def base_url(web: WebSettings) -> str:
    """Where this machine reaches the configured server (a wildcard bind answers on loopback)."""
    host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "[::1]"}.get(web.host, web.host)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{web.port}/"


class DaemonUnreachable(Exception):
    pass


def _call(url: str, path: str, method: str = "GET", token: str = "", timeout: float = 10.0) -> tuple[int, dict]:
    request = urllib.request.Request(url.rstrip("/") + path, method=method, data=b"" if method == "POST" else None)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            body = json.loads(exc.read() or b"{}")
        except ValueError:
            body = {"error": exc.reason}
        return exc.code, body
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DaemonUnreachable(f"voiced is not running (nothing answers at {url}: {reason}); "
                                "start it with `voiced run` or `systemctl start voiced`") from None


def _fail(status: int, body: dict) -> int:
    message = body.get("error", "unexpected answer")
    if status == 401:
        message += " (set [web] token in the config this command reads, or VOICED_WEB__TOKEN)"
    print(f"voiced: {message} (HTTP {status})", file=sys.stderr)
    return 1


def _seconds(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}s"


def format_status(st: dict) -> str:
    lines = [f"voiced: {st['state']} - {st['status_line']}"]

    def row(label: str, text: str) -> None:
        lines.append(f"  {label:<12} {text}")

    row("alive", f"{'yes' if st['alive'] else 'NO'} ({st['alive_reason']})")
    row("uptime", str(dt.timedelta(seconds=int(st["uptime_s"]))))
    for label, dev in (("microphone", st["input"]), ("speaker", st["output"])):
        row(label, f"{dev['device']}: {'ok' if dev['ok'] else 'FAILING'} ({dev['detail']})")
    row("wake words", ", ".join(st["wake_words"]))
    for role, e in st["engines"].items():
        notes = f" [{'; '.join(e['notes'])}]" if e["notes"] else ""
        row(role.upper(), f"{e['name']} on {e['device']} ({e['model']}){notes}")
    gpu = st.get("gpu")
    row("GPU", f"{gpu['name']}, VRAM {gpu['vram_used_mb']} / {gpu['vram_total_mb']} MB" if gpu else "none (CPU)")
    wyoming = st.get("wyoming") or {}
    for r in wyoming.get("remotes", []):
        down = f" ({r['last_error']}; retry in {r['retry_in_s']} s)" if r["state"] == "down" else ""
        row(f"remote {r['role'].upper()}", f"{r['uri']}: {r['state']}{down}")
    if wyoming.get("server"):
        sv, q = wyoming["server"], wyoming["server"]["queue"]
        row("wyoming", f"serving {sv['uri']}: {sv['clients']}/{sv['max_clients']} clients, {q['active']} in queue, "
                       f"{q['served']} served, {q['refused']} busy")
    ha = st.get("homeassistant") or {}
    if ha.get("enabled"):
        state = ha.get("error") or ("connected, takes the voice runs" if ha.get("voice") else
                                    "connected" if ha.get("connected") else "waiting for Home Assistant")
        row("home assistant", f"{ha.get('listening', '?')}: {state}" + (f" from {ha['peer']}" if ha.get("peer") else ""))
    eot = st.get("end_of_turn")
    if eot:
        how = f"semantic ({eot['model']})" if eot["mode"] == "semantic" else f"silence ({eot['detail']})" \
            if eot["detail"] else "silence"
        sp = eot["speculations"]
        row("end of turn", f"{how}; answers started at pauses: {sp['started']}, used {sp['used']}, "
                           f"discarded {sp['discarded']}")
    c = st["counts"]
    row("turns", f"{c.get('turns', 0)} (errors {c.get('errors', 0)}, recoveries {c.get('recoveries', 0)})")
    if st["latency"]:
        row("latency", "stage            median     p95    n")
        for stage, v in st["latency"].items():
            lines.append(f"  {'':<12}   {stage:<15} {_seconds(v['median_s']):>7} {_seconds(v['p95_s']):>7} {v['n']:>4}")
    if st["turns"]:
        lines.append("  last turns")
        for t in st["turns"][-5:]:
            when = dt.datetime.fromtimestamp(t["time"]).strftime("%H:%M:%S")
            lines.append(f"    {when} [{t['trigger']}] {t['outcome']}: heard {t['transcript']!r}, said {t['reply']!r}")
    return "\n".join(lines)


def print_status(url: str, token: str = "") -> int:
    try:
        status, body = _call(url, "/api/status", token=token)
    except DaemonUnreachable as exc:
        print(f"voiced: {exc}", file=sys.stderr)
        return 1
    if status != 200:
        return _fail(status, body)
    print(format_status(body))
    return 0


def trigger(url: str, token: str = "") -> int:
    try:
        status, body = _call(url, "/api/trigger", method="POST", token=token)
    except DaemonUnreachable as exc:
        print(f"voiced: {exc}", file=sys.stderr)
        return 1
    if status != 202:
        return _fail(status, body)
    print("voiced is listening: speak now")
    return 0
