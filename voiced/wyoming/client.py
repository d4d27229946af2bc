"""One request to a remote Wyoming service: connect, send events, read the answer; network
failures become RemoteUnavailable (transient: retry later or use the local model)."""
from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from urllib.parse import urlparse

from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe, Info

from ..config import WyomingSettings
from ..engines.base import EngineError, TransientEngineError

BUSY = "busy"   # the Error code voiced's server sends when its queue or connection limit is full


class RemoteUnavailable(TransientEngineError):
    """The remote could not be reached, or dropped the connection, or went silent."""


class RemoteBusy(TransientEngineError):
    """The remote is up but refused this request (its queue is full)."""


class RemoteError(EngineError):
    """The remote answered with an error event for this request (its text and code kept)."""

    def __init__(self, message: str, text: str = "", code: str | None = None):
        super().__init__(message)
        self.text, self.code = text or message, code


def host_port(uri: str) -> tuple[str, int]:
    parsed = urlparse(uri)
    if parsed.scheme != "tcp" or not parsed.hostname or parsed.port is None:
        raise ValueError(f"not a tcp://HOST:PORT Wyoming address: {uri!r}")
    return parsed.hostname, parsed.port


class WyomingRequests:
    """Requests to one remote service; a new connection each (as Home Assistant does), so a
    restarted remote needs no reconnect logic here."""

    def __init__(self, uri: str, ws: WyomingSettings):
        self.uri, self.ws = uri, ws
        self.host, self.port = host_port(uri)

    def exchange(self, events: Iterable[Event], last: Callable[[Event], bool],
                 on_event: Callable[[Event], None] | None = None) -> list[Event]:
        """Send `events`, then collect answers until `last(event)`; returns what came."""
        return asyncio.run(self._exchange(events, last, on_event))

    async def _exchange(self, events, last, on_event) -> list[Event]:
        client = AsyncTcpClient(self.host, self.port, connect_timeout=self.ws.connect_timeout_s,
                                read_timeout=self.ws.read_timeout_s)
        try:
            async with client:
                for event in events:
                    await client.write_event(event)
                answers = []
                while True:
                    event = await client.read_event()
                    if event is None:
                        raise RemoteUnavailable(f"{self.uri} closed the connection before answering")
                    if Error.is_type(event.type):
                        error = Error.from_event(event)
                        if error.code == BUSY:
                            raise RemoteBusy(f"{self.uri}: {error.text}")
                        raise RemoteError(f"{self.uri}: {error.text}", error.text, error.code)
                    if on_event:
                        on_event(event)
                    answers.append(event)
                    if last(event):
                        return answers
        except (OSError, EOFError, asyncio.TimeoutError) as exc:   # refused, reset, timed out, cut mid-event
            detail = str(exc) or type(exc).__name__
            raise RemoteUnavailable(f"{self.uri}: {detail}") from exc

    def describe(self) -> Info:
        answers = self.exchange([Describe().event()], lambda e: Info.is_type(e.type))
        return Info.from_event(answers[-1])

    def program(self, kind: str, what: str):
        """The remote's first installed program of `kind` ("asr", "tts"), or RemoteError."""
        programs = [p for p in getattr(self.describe(), kind) if p.installed]
        if not programs:
            raise RemoteError(f"{self.uri} offers no {what}")
        return programs[0]
