"""Piper TTS worker: a long-lived process that speaks raw PCM on stdout.

Run by voiced.engines.tts_piper with `sys.executable -m voiced.engines.piper_worker`.
piper-tts is GPL-3.0-or-later; voiced only ever talks to it through this separate
process and a byte protocol, never by importing it into the daemon. Being long-lived,
the voice is loaded once (~0.3 s) and each reply starts in tens of milliseconds.

Protocol. stdin: one JSON object per line: {"sentences": ["...", ...]} asks for speech;
{"cancel": true} stops the current request after the sentence being spoken (barge-in), and
is ignored when none is running. stdout: frames of a 1-byte kind + little-endian u32
length + payload:
  R  ready, JSON {"sample_rate": int, "voice": str}   (once, after loading)
  A  int16 mono PCM for the next sentence of the request (may be empty)
  X  error text (utf-8): in place of a sentence that failed, or at start-up (then it exits)
  E  end of the request (length 0), also after a cancel
"""
from __future__ import annotations

import argparse
import json
import os
import select
import struct
import sys

HEADER = struct.Struct("<cI")
READY, AUDIO, ERROR, END = b"R", b"A", b"X", b"E"


def _frame_writer():
    """Frames go to the real stdout; fd 1 is pointed at stderr so that a stray print()
    from a library can never corrupt the PCM stream."""
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def write(kind: bytes, payload: bytes = b"") -> None:
        out.write(HEADER.pack(kind, len(payload)) + payload)

    return write


def load_voice(model: str, config: str, threads: int):
    import onnxruntime
    from piper import PiperVoice
    from piper.config import PiperConfig

    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads = threads     # PiperVoice.load() would take every core
    opts.inter_op_num_threads = 1
    with open(config, encoding="utf-8") as fh:
        cfg = PiperConfig.from_dict(json.load(fh))
    session = onnxruntime.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])
    return PiperVoice(session=session, config=cfg)


def speak(voice, text: str) -> bytes:
    """One sentence's PCM. Piper may split it further; its parts are joined."""
    return b"".join(chunk.audio_int16_bytes for chunk in voice.synthesize(text))


class LineReader:
    """Lines from a file descriptor, with a non-blocking peek between sentences (Python's
    buffered stdin would hide data from select())."""

    def __init__(self, fd: int):
        self.fd, self.buf, self.eof = fd, b"", False

    def readline(self, timeout: float | None = None) -> bytes | None:
        """A complete line; None on timeout, b"" at end of input."""
        while b"\n" not in self.buf and not self.eof:
            if timeout is not None and not select.select([self.fd], [], [], timeout)[0]:
                return None
            data = os.read(self.fd, 65536)
            self.eof = not data
            self.buf += data
        line, sep, self.buf = self.buf.partition(b"\n")
        return line + sep


def serve(voice, request: dict, write, stdin: LineReader) -> None:
    """One request: a frame per sentence (A, or X if that sentence failed), then E."""
    for sentence in request["sentences"]:
        line = stdin.readline(timeout=0)
        if line and b"cancel" in line:
            break
        try:
            pcm = speak(voice, str(sentence))
        except Exception as exc:  # noqa: BLE001 - one bad sentence must not kill the worker
            write(ERROR, f"{type(exc).__name__}: {exc}".encode())
            continue
        write(AUDIO, pcm)
    write(END)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--config", required=True)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    write = _frame_writer()
    try:
        voice = load_voice(args.model, args.config, args.threads)
    except Exception as exc:  # noqa: BLE001 - reported to the engine, which decides
        try:
            write(ERROR, f"cannot load piper voice {args.model}: {type(exc).__name__}: {exc}".encode())
        except BrokenPipeError:
            pass
        return 1
    try:
        write(READY, json.dumps({"sample_rate": voice.config.sample_rate, "voice": args.model}).encode())
    except BrokenPipeError:               # the daemon stopped while this voice loaded
        return 0
    stdin = LineReader(0)
    try:
        while line := stdin.readline():
            try:
                request = json.loads(line)
            except ValueError:
                continue                  # not ours to answer: the engine only sends JSON
            if isinstance(request, dict) and "sentences" in request:   # a late cancel is dropped
                serve(voice, request, write, stdin)
    except BrokenPipeError:               # the engine went away: nothing left to do
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
