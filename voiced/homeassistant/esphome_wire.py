"""The ESPHome native API's framing, server side: plaintext and Noise.

Plaintext frame: 0x00, varint(payload length), varint(message type), payload (a protobuf
message from aioesphomeapi's api_pb2: the definitions Home Assistant itself uses).
Noise frame: 0x01, 2-byte big-endian length, then a handshake message or, once ready, an
encrypted [type (2 bytes), length (2 bytes), payload]. The handshake is
Noise_NNpsk0_25519_ChaChaPoly_SHA256 with the prologue "NoiseAPIInit\\0\\0": the client sends
an empty hello frame and its handshake; the server answers with its hello (protocol 1, node
name, MAC) and its half of the handshake.
"""
from __future__ import annotations

import base64

PLAIN, NOISE = 0x00, 0x01
MAX_FRAME = 1 << 20   # a frame claiming more is garbage: close the connection


class ProtocolError(Exception):
    """The peer sent something that is not this protocol; the connection is closed."""


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _read_varint(buf: bytes | bytearray, pos: int) -> tuple[int, int] | None:
    """(value, next position), or None if the buffer ends inside it."""
    value = shift = 0
    while pos < len(buf):
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 35:
            raise ProtocolError("varint too long")
    return None


class PlainFrames:
    """feed(bytes) -> [(type, payload)]; encode([(type, payload)]) -> bytes."""
    encrypted = False

    def __init__(self):
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buf += data
        out = []
        while self._buf:
            if self._buf[0] != PLAIN:
                raise ProtocolError("the client speaks the encrypted protocol; set [homeassistant] encryption_key"
                                    if self._buf[0] == NOISE else f"bad frame marker {self._buf[0]:#x}")
            length = _read_varint(self._buf, 1)
            if length is None:
                break
            if length[0] > MAX_FRAME:
                raise ProtocolError(f"frame of {length[0]} bytes")
            kind = _read_varint(self._buf, length[1])
            if kind is None or len(self._buf) < kind[1] + length[0]:
                break
            out.append((kind[0], bytes(self._buf[kind[1]:kind[1] + length[0]])))
            del self._buf[:kind[1] + length[0]]
        return out

    def encode(self, packets: list[tuple[int, bytes]]) -> bytes:
        return b"".join(b"\0" + varint(len(data)) + varint(kind) + data for kind, data in packets)

    def pending_writes(self) -> bytes:
        return b""


class NoiseFrames:
    """The encrypted protocol: the handshake is answered inside feed(); what to send back
    meanwhile is collected in pending_writes()."""
    encrypted = True

    def __init__(self, psk_b64: str, name: str, mac: str):
        from noise.connection import NoiseConnection

        self._proto = NoiseConnection.from_name(b"Noise_NNpsk0_25519_ChaChaPoly_SHA256")
        self._proto.set_as_responder()
        self._proto.set_psks(base64.b64decode(psk_b64))
        self._proto.set_prologue(b"NoiseAPIInit\x00\x00")
        self._proto.start_handshake()
        self._hello = bytes([0x01]) + name.encode() + b"\0" + mac.encode() + b"\0"
        self._state = "hello"
        self._buf = bytearray()
        self._out = bytearray()

    @staticmethod
    def _frame(body: bytes) -> bytes:
        return bytes((NOISE, len(body) >> 8 & 0xFF, len(body) & 0xFF)) + body

    def pending_writes(self) -> bytes:
        out, self._out = bytes(self._out), bytearray()
        return out

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buf += data
        out = []
        while len(self._buf) >= 3:
            if self._buf[0] != NOISE:
                raise ProtocolError("the client speaks plaintext but [homeassistant] encryption_key is set: "
                                    "give Home Assistant the key" if self._buf[0] == PLAIN
                                    else f"bad frame marker {self._buf[0]:#x}")
            size = self._buf[1] << 8 | self._buf[2]
            if len(self._buf) < 3 + size:
                break
            body = bytes(self._buf[3:3 + size])
            del self._buf[:3 + size]
            if self._state == "hello":            # the client's empty hello: say who we are
                self._out += self._frame(self._hello)
                self._state = "handshake"
            elif self._state == "handshake":
                self._handshake(body)
            else:
                msg = self._proto.decrypt(body)
                if len(msg) < 4:
                    raise ProtocolError("encrypted message too short")
                out.append((msg[0] << 8 | msg[1], msg[4:]))
        return out

    def _handshake(self, body: bytes) -> None:
        if not body or body[0] != 0:
            raise ProtocolError("bad handshake frame")
        try:
            self._proto.read_message(body[1:])
        except Exception as exc:  # noqa: BLE001 - InvalidTag: the client's key is not ours
            self._out += self._frame(b"\x01Handshake MAC failure")
            raise ProtocolError("the client's encryption key does not match [homeassistant] encryption_key") from exc
        self._out += self._frame(b"\x00" + self._proto.write_message())
        self._state = "ready"

    def encode(self, packets: list[tuple[int, bytes]]) -> bytes:
        out = bytearray()
        for kind, data in packets:
            header = bytes((kind >> 8 & 0xFF, kind & 0xFF, len(data) >> 8 & 0xFF, len(data) & 0xFF))
            out += self._frame(self._proto.encrypt(header + data))
        return bytes(out)
