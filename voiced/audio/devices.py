"""Finding PyAudio devices by name, index or "default", and opening them at a rate they accept."""
from __future__ import annotations

import contextlib
import logging
import os
import threading
from dataclasses import dataclass

log = logging.getLogger(__name__)

COMMON_RATES = (16_000, 48_000, 44_100, 24_000, 22_050, 32_000, 8_000, 96_000)


class DeviceNotFound(OSError):
    pass


@dataclass(frozen=True)
class DeviceChoice:
    index: int | None      # None = PortAudio's default device
    name: str
    rate: int              # rate the stream is opened at
    channels: int          # channels the stream is opened with


# PortAudio's init/terminate and our stderr redirect are process-wide: the capture, the
# speaker and `voiced doctor` may reach them from different threads, so one lock serialises
# them (interleaved redirects could leave fd 2 on /dev/null for good).
_PORTAUDIO = threading.RLock()


def new_pyaudio():
    """pyaudio.PyAudio(), without the screenful of ALSA/JACK probe noise PortAudio prints
    on stderr at every start (it would bury our own log lines at each device reopen)."""
    import pyaudio

    with _PORTAUDIO, _stderr_silenced():
        return pyaudio.PyAudio()


@contextlib.contextmanager
def _stderr_silenced():
    """fd 2 to /dev/null for the block; only under _PORTAUDIO (never two at once)."""
    with _PORTAUDIO:
        try:
            saved = os.dup(2)
        except OSError:
            yield
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)


def close_quietly(stream, pa, abort: bool = False) -> None:
    """Close a stream and its PyAudio; after a device error either may raise, which changes nothing.
    abort=True skips stop_stream(), which waits for buffered output to play: Pa_CloseStream on
    a running stream discards it instead (barge-in must cut the reply at once)."""
    if stream is not None:
        try:
            if not abort:
                stream.stop_stream()
            stream.close()
        except OSError:
            pass
    if pa is not None:
        with _PORTAUDIO:
            pa.terminate()


def describe_devices(pa) -> list[dict]:
    out = []
    for i in range(pa.get_device_count()):
        info = pa.get_device_info_by_index(i)
        out.append({"index": i, "name": info["name"], "inputs": int(info["maxInputChannels"]),
                    "outputs": int(info["maxOutputChannels"]), "rate": int(info["defaultSampleRate"])})
    return out


def find_device(pa, wanted: int | str, kind: str) -> tuple[int | None, str]:
    """Index and name of the wanted device; kind is "input" or "output"."""
    key = "maxInputChannels" if kind == "input" else "maxOutputChannels"
    if isinstance(wanted, str) and wanted.strip().isdigit():
        wanted = int(wanted)
    if wanted in ("", "default"):
        try:
            info = pa.get_default_input_device_info() if kind == "input" else pa.get_default_output_device_info()
        except OSError as exc:
            raise DeviceNotFound(f"no default {kind} device ({exc})") from None
        return int(info["index"]), str(info["name"])
    devices = [pa.get_device_info_by_index(i) for i in range(pa.get_device_count())]
    if isinstance(wanted, int):
        if 0 <= wanted < len(devices) and devices[wanted][key] > 0:
            return wanted, str(devices[wanted]["name"])
        raise DeviceNotFound(f"{kind} device index {wanted} does not exist or has no {kind} channels")
    matches = [d for d in devices if d[key] > 0 and str(wanted).lower() in str(d["name"]).lower()]
    if not matches:
        names = ", ".join(repr(d["name"]) for d in devices if d[key] > 0) or "none"
        raise DeviceNotFound(f"no {kind} device named like {wanted!r}; available: {names}")
    return int(matches[0]["index"]), str(matches[0]["name"])


def open_stream(pa, index: int | None, name: str, kind: str, rate: int, frames_per_buffer: int, **kw):
    """Open at the wanted rate and mono; if the device refuses, try its own rate and channels.

    Returns (stream, DeviceChoice). The caller resamples/down-mixes what it gets.
    """
    import pyaudio

    info = pa.get_device_info_by_index(index) if index is not None else None
    max_ch = int(info["maxInputChannels" if kind == "input" else "maxOutputChannels"]) if info else 1
    native = int(info["defaultSampleRate"]) if info else rate
    attempts = [(rate, 1), (native, 1)] + [(r, 1) for r in COMMON_RATES] + [(native, min(2, max_ch)), (native, max_ch)]
    seen, last_exc = set(), None
    for r, ch in attempts:
        if (r, ch) in seen or ch < 1:
            continue
        seen.add((r, ch))
        try:
            stream = pa.open(format=pyaudio.paInt16, channels=ch, rate=r, input=kind == "input",
                             output=kind == "output",
                             **({"input_device_index": index} if kind == "input" else {"output_device_index": index}),
                             frames_per_buffer=max(1, frames_per_buffer * r // rate), **kw)
        except (OSError, ValueError) as exc:
            last_exc = exc
            continue
        if (r, ch) != (rate, 1):
            log.info("%s device %r opened at %d Hz, %d channel(s); converting to %d Hz mono",
                     kind, name, r, ch, rate)
        return stream, DeviceChoice(index, name, r, ch)
    raise OSError(f"cannot open {kind} device {name!r} at any rate: {last_exc}")
