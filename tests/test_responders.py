"""Responders: builtin intents, command (stdin/stdout, timeout, failure), openai (real HTTP server)."""
from __future__ import annotations

import datetime as dt
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from voiced.config import ResponderSettings
from voiced.responder import Context, make_responder
from voiced.responder.builtin import BuiltinResponder

FIXED = dt.datetime(2026, 3, 14, 15, 9)


@pytest.mark.parametrize("said, expect", [
    ("What time is it?", "It's 3:09 PM."),
    ("what's the time", "It's 3:09 PM."),
    ("What is the date today?", "Today is Saturday, March 14, 2026."),
    ("What can you do?", "I can tell you the time"),
    ("are you ok", "I'm all good."),
    ("Turn on the kitchen lights.", "You said: Turn on the kitchen lights."),
])
def test_builtin_intents(said, expect):
    reply = BuiltinResponder(clock=lambda: FIXED).respond(said, Context(status=lambda: "all good"))
    assert reply.text.startswith(expect)
    assert reply.source == "builtin"


def test_builtin_midnight_and_noon():
    at = lambda h, m: BuiltinResponder(clock=lambda: FIXED.replace(hour=h, minute=m))  # noqa: E731
    assert at(0, 5).respond("time please, what time is it", Context()).text == "It's 12:05 AM."
    assert at(12, 0).respond("what time is it", Context()).text == "It's 12:00 PM."


def command(argv, timeout=5.0):
    return make_responder(ResponderSettings(kind="command", command=tuple(argv), timeout_s=timeout))


def test_command_gets_transcript_on_stdin():
    script = "import sys; print('Reversed: ' + sys.stdin.read()[::-1])"
    reply = command([sys.executable, "-c", script]).respond("abc", Context())
    assert reply.text == "Reversed: cba" and reply.source == "command"


@pytest.mark.parametrize("argv, why", [
    ([sys.executable, "-c", "import time; time.sleep(5)"], "timed out"),
    ([sys.executable, "-c", "import sys; sys.exit(3)"], "exited with 3"),
    ([sys.executable, "-c", "pass"], "printed nothing"),
    (["/nonexistent/program"], "could not start"),
])
def test_command_failures_fall_back_to_builtin(argv, why):
    reply = command(argv, timeout=0.5).respond("what time is it", Context())
    assert reply.source == "builtin" and why in reply.note
    assert "It's" in reply.text and "failed" in reply.text


class FakeLLM(BaseHTTPRequestHandler):
    """A real HTTP server speaking the chat-completions format (a local llama.cpp stands in)."""
    seen: list[dict] = []
    answer: str | None = None    # what it says; None = how many characters it heard

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeLLM.seen.append({"body": body, "auth": self.headers.get("Authorization")})
        last = body["messages"][-1]["content"]
        content = FakeLLM.answer if FakeLLM.answer is not None else f"LLM heard {len(last)} chars."
        payload = {"choices": [{"message": {"role": "assistant", "content": content}}]}
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture()
def llm_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeLLM)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1/chat/completions"
    server.shutdown()


def test_openai_sends_history_and_key(llm_server):
    FakeLLM.seen.clear()
    settings = ResponderSettings(kind="openai", openai_url=llm_server, openai_api_key="k123", openai_model="m")
    ctx = Context(history=[("hi", "hello")])
    reply = make_responder(settings).respond("tell me a joke", ctx)
    assert reply.text == "LLM heard 14 chars." and reply.source == "openai"
    sent = FakeLLM.seen[0]
    assert sent["auth"] == "Bearer k123" and sent["body"]["model"] == "m"
    roles = [m["role"] for m in sent["body"]["messages"]]
    assert roles == ["system", "user", "assistant", "user"]


def test_openai_unreachable_falls_back_and_says_so_once():
    settings = ResponderSettings(kind="openai", openai_url="http://127.0.0.1:9/v1/chat/completions", timeout_s=1)
    responder = make_responder(settings)
    first = responder.respond("what time is it", Context())
    second = responder.respond("what time is it", Context())
    assert first.source == "builtin" and "not answering" in first.text and "It's" in first.text
    assert "not answering" not in second.text and second.note.startswith("openai failed")
