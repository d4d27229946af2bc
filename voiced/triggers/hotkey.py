"""Hotkey trigger: a key or key combination on a keyboard starts (push-to-talk: and ends) a turn.

Linux delivers key presses as fixed-size `struct input_event` records on /dev/input/event*.
One thread polls every open source plus a wake-up pipe. Keyboards come from evdev (which also
tells which devices have the keys), or a source is any fd/path of packed records (a pipe or
FIFO in tests: evdev cannot open those). The device list is rescanned every few seconds, so
keyboards plugged in later (USB, Bluetooth) are picked up without a restart, and a keyboard
that goes away is closed with one log line and reopened when it comes back.
"""
from __future__ import annotations

import errno
import glob
import logging
import os
import re
import select
import stat
import struct
import threading
import time
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence, Union

log = logging.getLogger(__name__)

EV_SYN, EV_KEY = 0x00, 0x01
SYN_REPORT, SYN_DROPPED = 0, 3      # DROPPED: the kernel's buffer overflowed, events were lost
KEY_UP, KEY_DOWN = 0, 1             # (2 = auto-repeat, ignored)
INPUT_EVENT = struct.Struct("llHHi")  # struct input_event on 64-bit Linux: timeval, type, code, value
RESCAN_S = 3.0
_NAME = re.compile(r"^(KEY|BTN)_[A-Z0-9_]+$")


# -- key names ---------------------------------------------------------------
def _names(spec: str) -> list[str]:
    names = [part.strip().upper() for part in str(spec).split("+")]
    if not names or any(not n for n in names):
        raise ValueError(f"key {spec!r} is empty or has an empty part (example: KEY_LEFTCTRL+KEY_SPACE)")
    return names


def key_codes(spec: str) -> tuple[int, ...]:
    """'KEY_LEFTCTRL+KEY_SPACE' -> (29, 57); ValueError naming the unknown key."""
    from evdev import ecodes

    codes = []
    for name in _names(spec):
        code = ecodes.ecodes.get(name)
        if code is None or not _NAME.match(name):
            raise ValueError(f"unknown key name {name!r}; use evdev names such as KEY_F12, KEY_PAUSE, "
                             f"KEY_RIGHTCTRL, or a combination like KEY_LEFTCTRL+KEY_SPACE")
        codes.append(code)
    return tuple(dict.fromkeys(codes))


def validate_key(spec: str) -> str:
    """The normalised key setting. Without evdev only the form is checked (the reader will not run)."""
    try:
        key_codes(spec)
    except ImportError:
        for name in _names(spec):
            if not _NAME.match(name):
                raise ValueError(f"unknown key name {name!r}; use evdev names such as KEY_F12") from None
    return "+".join(_names(spec))


# -- event sources -------------------------------------------------------------
Event = tuple[float, int, int, int]   # (time_s, type, code, value)


class DeviceGone(OSError):
    """The source was unplugged or its writer closed: close it; it may come back."""


class EventSource(Protocol):
    name: str

    def fileno(self) -> int: ...
    def read(self) -> list[Event]: ...        # what is ready now ([] if nothing); DeviceGone if gone
    def held_keys(self) -> set[int] | None: ...   # keys down now, if the source can tell (resync)
    def close(self) -> None: ...


class RawSource:
    """Packed input_event records from an fd or a path (pipe, FIFO, or an event node read raw)."""

    def __init__(self, fd_or_path: Union[int, str], name: str | None = None):
        if isinstance(fd_or_path, int):
            self.fd = fd_or_path
            os.set_blocking(self.fd, False)
        else:
            self.fd = os.open(fd_or_path, os.O_RDONLY | os.O_NONBLOCK)
        self.name = name or (f"fd {fd_or_path}" if isinstance(fd_or_path, int) else str(fd_or_path))
        self._buf = b""

    def fileno(self) -> int:
        return self.fd

    def read(self) -> list[Event]:
        try:
            data = os.read(self.fd, INPUT_EVENT.size * 64)
        except BlockingIOError:
            return []
        except OSError as exc:
            raise DeviceGone(exc.errno, exc.strerror) from None
        if not data:
            raise DeviceGone(errno.ENODEV, "end of file (writer closed)")
        self._buf += data
        whole = len(self._buf) - len(self._buf) % INPUT_EVENT.size   # a pipe may split a record
        events = [(sec + usec / 1e6, typ, code, value)
                  for sec, usec, typ, code, value in INPUT_EVENT.iter_unpack(self._buf[:whole])]
        self._buf = self._buf[whole:]
        return events

    def held_keys(self) -> set[int] | None:
        return None

    def close(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass


class EvdevSource:
    """A keyboard opened with evdev (read-only: no LED or grab side effects)."""

    def __init__(self, device):
        self.device = device
        self.name = f"{device.name} ({device.path})"

    def fileno(self) -> int:
        return self.device.fd

    def read(self) -> list[Event]:
        try:
            return [(e.sec + e.usec / 1e6, e.type, e.code, e.value) for e in self.device.read()]
        except BlockingIOError:
            return []
        except OSError as exc:   # ENODEV when unplugged
            raise DeviceGone(exc.errno, exc.strerror) from None

    def held_keys(self) -> set[int] | None:
        try:
            return set(self.device.active_keys())
        except OSError:
            return None

    def close(self) -> None:
        try:
            self.device.close()
        except OSError:
            pass


@dataclass(frozen=True)
class HotkeyEvent:
    pressed: bool      # True: the whole combination became held; False: it stopped being held
    time_s: float      # kernel timestamp of the event that changed it (wall clock)
    held_s: float      # on release: how long it was held, from the event timestamps
    device: str


Callback = Callable[[HotkeyEvent], None]


# -- the reader thread -----------------------------------------------------------
class HotkeyReader:
    """Calls on_press(HotkeyEvent) when every key of the combination is held and
    on_release(HotkeyEvent) when one of them is let go (or its keyboard disappears).

    devices: paths (watched: reopened when they reappear), raw fds (ints) or EventSource
    objects. Empty = every keyboard under `device_dir` (event*) that has all the keys.
    Callbacks run on the reader thread: keep them short; their exceptions are logged.
    """

    def __init__(self, key: str, on_press: Callback, on_release: Callback | None = None, *,
                 devices: Sequence[Union[str, int, EventSource]] = (), device_dir: str = "/dev/input",
                 rescan_s: float = RESCAN_S):
        self.codes = key_codes(key) if isinstance(key, str) else tuple(key)
        self.key = key if isinstance(key, str) else "+".join(map(str, key))
        self.on_press, self.on_release = on_press, on_release
        self.paths = [d for d in devices if isinstance(d, str)]
        self.device_dir, self.rescan_s = device_dir, rescan_s
        self._scan = not devices
        self._sources: dict[int, EventSource] = {}          # fd -> source
        self._path_of: dict[int, tuple[str, tuple]] = {}     # fd -> (path, node identity)
        self._skip: dict[str, tuple] = {}                    # path -> identity not to retry
        self._pressed: dict[int, set[int]] = {}              # fd -> combination keys down
        self._dropped: set[int] = set()                      # fds resyncing after SYN_DROPPED
        self._held_since: float | None = None
        self._warned_none = False
        self._poll = select.poll()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._poll.register(self._wake_r, select.POLLIN)
        for d in devices:
            if not isinstance(d, str):
                self._add(d if not isinstance(d, int) else RawSource(d))
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hotkey", daemon=True)

    @classmethod
    def from_settings(cls, settings, on_press: Callback, on_release: Callback | None = None, **kw):
        return cls(settings.key, on_press, on_release, devices=tuple(settings.devices), **kw)

    @property
    def devices(self) -> list[str]:
        """Names of the sources open now."""
        return [s.name for s in list(self._sources.values())]

    @property
    def held(self) -> bool:
        return self._held_since is not None

    def start(self) -> "HotkeyReader":
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        if not self._stopping.is_set():
            self._stopping.set()
            os.write(self._wake_w, b"x")
        if self._thread.ident is None:   # never started
            self._close_all()
        else:
            self._thread.join(timeout)
        if not self._thread.is_alive() and self._wake_w >= 0:
            for fd in (self._wake_r, self._wake_w):
                os.close(fd)
            self._wake_r = self._wake_w = -1

    def _run(self) -> None:
        next_scan = 0.0
        while not self._stopping.is_set():
            try:   # nothing here may end the thread: a hotkey bug must not take the daemon down
                now = time.monotonic()
                if now >= next_scan:
                    self._rescan()
                    next_scan = now + self.rescan_s
                for fd, _mask in self._poll.poll(max(0.0, next_scan - time.monotonic()) * 1000):
                    if fd == self._wake_r:
                        os.read(self._wake_r, 64)
                    elif fd in self._sources:
                        self._service(self._sources[fd])
            except Exception:
                log.exception("hotkey reader error (carrying on)")
                self._stopping.wait(1.0)
        self._close_all()

    def _close_all(self) -> None:   # on stop: no release callback, the daemon is going down
        for src in self._sources.values():
            src.close()
        self._sources.clear()

    def _service(self, src: EventSource) -> None:
        fd = src.fileno()
        try:
            events = src.read()
        except DeviceGone as exc:
            self._remove(fd, f"{exc.strerror or exc}")
            return
        for time_s, typ, code, value in events:
            if typ == EV_SYN and code == SYN_DROPPED:
                self._dropped.add(fd)   # the kernel's rule: ignore events up to the next SYN_REPORT
            elif typ == EV_SYN and code == SYN_REPORT and fd in self._dropped:
                self._dropped.discard(fd)   # then ask the device; unknown state counts as released
                self._pressed[fd] = (src.held_keys() or set()) & set(self.codes)
                self._update(time_s, src.name)
            elif typ == EV_KEY and code in self.codes and value in (KEY_DOWN, KEY_UP) and fd not in self._dropped:
                keys = self._pressed.setdefault(fd, set())
                (keys.add if value == KEY_DOWN else keys.discard)(code)
                self._update(time_s, src.name)

    def _update(self, time_s: float, device: str) -> None:
        down = set().union(*self._pressed.values()) if self._pressed else set()
        now_held = all(code in down for code in self.codes)
        if now_held and self._held_since is None:
            self._held_since = time_s
            self._fire(self.on_press, HotkeyEvent(True, time_s, 0.0, device))
        elif not now_held and self._held_since is not None:
            held_s, self._held_since = max(0.0, time_s - self._held_since), None
            self._fire(self.on_release, HotkeyEvent(False, time_s, held_s, device))

    def _fire(self, callback: Callback | None, event: HotkeyEvent) -> None:
        if callback is None:
            return
        try:
            callback(event)
        except Exception:
            log.exception("hotkey %s callback failed", "press" if event.pressed else "release")

    # -- devices coming and going ------------------------------------------------
    def _add(self, src: EventSource, path: str | None = None, ident: tuple = ()) -> None:
        fd = src.fileno()
        self._sources[fd] = src
        if path is not None:
            self._path_of[fd] = (path, ident)
        self._poll.register(fd, select.POLLIN)
        log.info("hotkey %s: reading %s", self.key, src.name)

    def _remove(self, fd: int, why: str | None) -> None:
        src = self._sources.pop(fd)
        self._path_of.pop(fd, None)
        self._dropped.discard(fd)
        self._poll.unregister(fd)
        src.close()
        if why:
            log.info("hotkey: %s gone (%s); reopened when it comes back", src.name, why)
        if self._pressed.pop(fd, None):   # keys held on a vanished keyboard are released
            self._update(time.time(), src.name)

    def _rescan(self) -> None:
        for fd, (path, ident) in list(self._path_of.items()):
            if _identity(path) != ident:   # node removed or replaced (unplugged, re-created)
                self._remove(fd, "device node removed")
        wanted = self.paths or (sorted(glob.glob(os.path.join(self.device_dir, "event*"))) if self._scan else [])
        opened = {p for p, _ in self._path_of.values()}
        for path in wanted:
            if path not in opened:
                self._try_open(path)
        if (self._scan or self.paths) and not self._sources and not self._warned_none:
            log.warning("hotkey %s: no readable keyboard with these keys at %s (the daemon's user must be "
                        "in the `input` group); still looking", self.key, self.paths or self.device_dir)
            self._warned_none = True
        elif self._sources:
            self._warned_none = False

    def _try_open(self, path: str) -> None:
        ident = _identity(path, with_ctime=True)
        if ident is None or self._skip.get(path) == ident:
            return   # absent, or already found unusable and not changed since (chmod changes ctime)
        loud = not self._scan   # a configured device that cannot be used deserves a warning
        try:
            mode = os.stat(path).st_mode
            if stat.S_ISFIFO(mode):
                src = RawSource(path)
            elif stat.S_ISCHR(mode):
                src = self._open_evdev(path)
            else:
                raise ValueError("not a character device or FIFO")
        except (OSError, ValueError) as exc:   # no permission, not a keyboard, gone meanwhile
            self._skip[path] = ident
            log.log(logging.WARNING if loud else logging.DEBUG, "hotkey: not using %s: %s", path, exc)
            return
        self._add(src, path, ident[:3])

    def _open_evdev(self, path: str) -> EventSource:
        try:
            from evdev import InputDevice, ecodes
        except ImportError:
            return RawSource(path)   # the records are the same; only the key check is lost
        dev = InputDevice(path, readonly=True)
        if not set(self.codes) <= set(dev.capabilities().get(ecodes.EV_KEY, ())):   # a mouse, a lid switch...
            name = dev.name
            dev.close()
            raise ValueError(f"{name!r} does not have {self.key}")
        return EvdevSource(dev)


def _identity(path: str, with_ctime: bool = False) -> tuple | None:
    """Which node a path is; with ctime, also whether its owner/mode changed (udev, chmod).
    Without: writing to a FIFO updates its ctime, which must not look like a new device."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_rdev) + ((st.st_ctime_ns,) if with_ctime else ())
