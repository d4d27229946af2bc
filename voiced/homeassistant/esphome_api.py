"""One ESPHome native API connection (server side), on the satellite's event loop.

Answers the session messages itself (hello, authentication, ping, disconnect) and hands every
other message to the satellite (satellite.py). Anything that is not the protocol closes the
connection with one log line; the server goes on accepting.
"""
from __future__ import annotations

import asyncio
import logging
import threading

from .esphome_wire import NoiseFrames, PlainFrames, ProtocolError

log = logging.getLogger("voiced.homeassistant")
API_VERSION = (1, 12)


def _messages():
    from aioesphomeapi import api_pb2
    from aioesphomeapi.core import MESSAGE_TYPE_TO_PROTO

    return api_pb2, MESSAGE_TYPE_TO_PROTO, {cls: kind for kind, cls in MESSAGE_TYPE_TO_PROTO.items()}


class ApiConnection(asyncio.Protocol):
    def __init__(self, satellite, loop: asyncio.AbstractEventLoop):
        self.pb, self._types, self._ids = _messages()
        self.satellite = satellite
        self.loop = loop
        s = satellite.settings
        self.frames = (NoiseFrames(s.encryption_key, s.name, satellite.mac) if s.encryption_key else PlainFrames())
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.client_info = ""
        self.authenticated = False

    # -- asyncio ----------------------------------------------------------------------------
    def connection_made(self, transport) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"

    def data_received(self, data: bytes) -> None:
        try:
            packets = self.frames.feed(data)
            handshake = self.frames.pending_writes()
            if handshake and self.transport is not None:
                self.transport.write(handshake)
            for kind, payload in packets:
                cls = self._types.get(kind)
                if cls is None:
                    log.debug("Home Assistant %s: message type %d is not known here; ignored", self.peer, kind)
                    continue
                self._handle(cls.FromString(payload))
        except ProtocolError as exc:
            log.warning("Home Assistant connection %s closed: %s", self.peer, exc)
            self._close_now()
        except Exception as exc:  # noqa: BLE001 - e.g. a protobuf DecodeError from garbage
            log.warning("Home Assistant connection %s closed: %s: %s", self.peer, type(exc).__name__, exc)
            self._close_now()

    def connection_lost(self, exc) -> None:
        self.transport = None
        self.satellite.disconnected(self)

    # -- sending (any thread) -------------------------------------------------------------------
    def send(self, *messages) -> None:
        if threading.get_ident() != self.satellite.loop_thread:
            self.loop.call_soon_threadsafe(self._send_now, messages)
        else:
            self._send_now(messages)

    def _send_now(self, messages) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(self.frames.encode([(self._ids[type(m)], m.SerializeToString()) for m in messages]))

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self._close_now)

    def _close_now(self) -> None:
        if self.transport is not None:
            self.transport.close()

    # -- the session ----------------------------------------------------------------------------
    def _handle(self, msg) -> None:
        pb = self.pb
        if isinstance(msg, pb.HelloRequest):
            self.client_info = msg.client_info
            self._send_now([pb.HelloResponse(api_version_major=API_VERSION[0], api_version_minor=API_VERSION[1],
                                             server_info="voiced", name=self.satellite.settings.name)])
            self.satellite.connected(self)
        elif isinstance(msg, pb.AuthenticationRequest):
            # No password (the encryption key is the protection): a device answers only a
            # wrong password, so there is nothing to send.
            self.authenticated = True
        elif isinstance(msg, pb.PingRequest):
            self._send_now([pb.PingResponse()])
        elif isinstance(msg, pb.DisconnectRequest):
            self._send_now([pb.DisconnectResponse()])
            self._close_now()
        elif isinstance(msg, (pb.PingResponse, pb.DisconnectResponse)):
            pass
        else:
            replies = self.satellite.handle(self, msg)
            if replies:
                self._send_now(replies)
