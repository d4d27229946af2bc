"""Hotkey trigger without a keyboard: packed struct input_event records written into pipes
and FIFOs (a temp "device directory") exactly as the kernel delivers them on /dev/input."""
from __future__ import annotations

import errno
import logging
import os
import struct
import threading
import time

import pytest

from voiced.config import ConfigError, HotkeySettings, load_settings
from voiced.triggers.hotkey import DeviceGone, EvdevSource, HotkeyReader

RECORD = struct.Struct("llHHi")   # tv_sec, tv_usec, type, code, value
EV_SYN, EV_KEY = 0, 1
KEY_LEFTCTRL, KEY_SPACE, KEY_F12 = 29, 57, 88
KEY_A = 30


def key(code: int, value: int, t: float) -> bytes:
    """One key event followed by its SYN_REPORT, as a keyboard sends it."""
    sec, usec = int(t), int(round((t - int(t)) * 1e6))
    return RECORD.pack(sec, usec, EV_KEY, code, value) + RECORD.pack(sec, usec, EV_SYN, 0, 0)


class Calls:
    def __init__(self):
        self.events = []
        self._cond = threading.Condition()

    def __call__(self, event):
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def wait(self, n: int, timeout: float = 3.0):
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.events) >= n, timeout), \
                f"expected {n} hotkey events, got {self.events}"
        return self.events

    @property
    def kinds(self):
        return ["press" if e.pressed else "release" for e in self.events]


def wait_until(pred, timeout: float = 3.0) -> None:
    end = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < end, "condition not met in time"
        time.sleep(0.01)


@pytest.fixture()
def pipe_reader():
    """A reader on one pipe; yields (write, calls, reader)."""
    made = []

    def make(spec="KEY_F12", **kw):
        r, w = os.pipe()
        calls = Calls()
        reader = HotkeyReader(spec, calls, calls, devices=[r], **kw).start()
        made.append((reader, w))
        return (lambda data: os.write(w, data)), calls, reader

    yield make
    for reader, w in made:
        reader.stop()
        os.close(w)


def open_writer(path, timeout: float = 3.0) -> int:
    """Open a FIFO for writing once the reader has it open (ENXIO until then)."""
    end = time.monotonic() + timeout
    while True:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            os.set_blocking(fd, True)
            return fd
        except OSError as exc:
            if exc.errno != errno.ENXIO or time.monotonic() > end:
                raise
            time.sleep(0.01)


def test_single_press_fires_once(pipe_reader):
    write, calls, reader = pipe_reader()
    write(key(KEY_F12, 1, 100.0))
    assert calls.wait(1)[0].pressed and reader.held
    write(key(KEY_F12, 0, 100.2) + key(KEY_A, 1, 100.3) + key(KEY_A, 0, 100.4))   # other keys: ignored
    calls.wait(2)
    time.sleep(0.1)
    assert calls.kinds == ["press", "release"] and not reader.held


def test_push_to_talk_held_time_comes_from_event_timestamps(pipe_reader):
    write, calls, _ = pipe_reader()
    write(key(KEY_F12, 1, 1000.25))
    time.sleep(0.05)
    write(key(KEY_F12, 0, 1002.75))
    press, release = calls.wait(2)
    assert press.pressed and press.time_s == pytest.approx(1000.25)
    assert not release.pressed and release.time_s == pytest.approx(1002.75)
    assert release.held_s == pytest.approx(2.5, abs=1e-6)


def test_combination_needs_all_keys(pipe_reader):
    write, calls, _ = pipe_reader("KEY_LEFTCTRL+KEY_SPACE")
    write(key(KEY_LEFTCTRL, 1, 1.0) + key(KEY_LEFTCTRL, 0, 1.1)    # ctrl alone
          + key(KEY_SPACE, 1, 2.0) + key(KEY_SPACE, 0, 2.1)         # space alone
          + key(KEY_LEFTCTRL, 1, 3.0) + key(KEY_SPACE, 1, 3.5)      # ctrl, then space: fires at 3.5
          + key(KEY_LEFTCTRL, 0, 4.0)                               # letting go of ctrl ends it
          + key(KEY_LEFTCTRL, 1, 5.0)                               # ctrl again, space still down
          + key(KEY_SPACE, 0, 6.0))                                 # letting go of space ends it
    events = calls.wait(4)
    time.sleep(0.1)
    assert calls.kinds == ["press", "release", "press", "release"]
    assert [e.time_s for e in events] == pytest.approx([3.5, 4.0, 5.0, 6.0])
    assert [e.held_s for e in events[1::2]] == pytest.approx([0.5, 1.0])


def test_key_repeat_does_not_refire(pipe_reader):
    write, calls, _ = pipe_reader()
    write(key(KEY_F12, 1, 10.0) + b"".join(key(KEY_F12, 2, 10.5 + i * 0.03) for i in range(20))
          + key(KEY_F12, 0, 11.5) + key(KEY_F12, 1, 12.0))
    events = calls.wait(3)
    time.sleep(0.1)
    assert calls.kinds == ["press", "release", "press"]
    assert [e.time_s for e in events] == pytest.approx([10.0, 11.5, 12.0])


def test_lost_events_resync_as_released(pipe_reader):
    """SYN_DROPPED: the kernel lost events; a raw source cannot tell which keys are down, so a held
    push-to-talk ends rather than recording forever. Keys before the next SYN_REPORT are ignored."""
    write, calls, _ = pipe_reader()
    write(key(KEY_F12, 1, 1.0) + RECORD.pack(2, 0, EV_SYN, 3, 0) + RECORD.pack(2, 0, EV_KEY, KEY_F12, 1)
          + RECORD.pack(2, 500000, EV_SYN, 0, 0) + key(KEY_F12, 1, 3.0))
    events = calls.wait(3)
    assert calls.kinds == ["press", "release", "press"]
    assert [e.time_s for e in events] == pytest.approx([1.0, 2.5, 3.0])


def test_record_split_across_writes(pipe_reader):
    write, calls, _ = pipe_reader()
    data = key(KEY_F12, 1, 7.0)
    write(data[:10])
    time.sleep(0.05)
    assert calls.events == []
    write(data[10:])
    assert calls.wait(1)[0].time_s == pytest.approx(7.0)


def test_callback_error_does_not_stop_the_reader():
    r, w = os.pipe()
    good = Calls()

    def boom(event):
        good(event)
        raise RuntimeError("bug in the daemon's handler")

    reader = HotkeyReader("KEY_F12", boom, None, devices=[r]).start()
    try:
        os.write(w, key(KEY_F12, 1, 1.0) + key(KEY_F12, 0, 1.1) + key(KEY_F12, 1, 2.0))
        assert [e.time_s for e in good.wait(2)] == pytest.approx([1.0, 2.0])
    finally:
        reader.stop()
        os.close(w)


def test_stop_joins_quickly_and_closes_the_device():
    r, w = os.pipe()
    reader = HotkeyReader("KEY_F12", lambda e: None, devices=[r], rescan_s=30).start()
    time.sleep(0.05)
    t0 = time.monotonic()
    reader.stop()
    assert time.monotonic() - t0 < 0.5
    assert not reader._thread.is_alive()
    with pytest.raises(OSError):   # the reader closed its end
        os.fstat(r)
    os.close(w)


def test_device_that_disappears_is_reopened_when_it_comes_back(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="voiced.triggers.hotkey")
    (tmp_path / "event7").write_text("not a device")   # ignored, not fatal
    path = tmp_path / "event3"
    os.mkfifo(path)
    calls = Calls()
    reader = HotkeyReader("KEY_F12", calls, calls, device_dir=str(tmp_path), rescan_s=0.05).start()
    try:
        w = open_writer(path)
        os.write(w, key(KEY_F12, 1, 1.0))
        calls.wait(1)
        # Unplugged while held: the node goes, the writer closes -> released, one log line.
        os.unlink(path)
        os.close(w)
        events = calls.wait(2)
        assert calls.kinds == ["press", "release"] and events[1].device == str(path)
        wait_until(lambda: reader.devices == [])
        gone = [r for r in caplog.records if "gone" in r.getMessage()]
        assert len(gone) == 1 and str(path) in gone[0].getMessage()

        os.mkfifo(path)   # plugged back in
        w = open_writer(path)
        os.write(w, key(KEY_F12, 1, 5.0) + key(KEY_F12, 0, 5.5))
        events = calls.wait(4)
        assert calls.kinds == ["press", "release", "press", "release"]
        assert events[3].held_s == pytest.approx(0.5)
        assert reader.devices == [str(path)]
        os.close(w)
    finally:
        reader.stop()


def test_configured_device_reopened_after_its_writer_closes(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="voiced.triggers.hotkey")
    path = tmp_path / "kbd"
    os.mkfifo(path)
    calls = Calls()
    reader = HotkeyReader("KEY_F12", calls, calls, devices=[str(path)], rescan_s=0.05).start()
    gone = lambda: sum("gone" in r.getMessage() for r in caplog.records)   # noqa: E731
    try:
        for i in range(3):   # each writer = the device coming back
            # Wait for the reader to drop the old one: a FIFO's buffer dies with its last opener.
            wait_until(lambda: gone() == i)
            w = open_writer(path)
            os.write(w, key(KEY_F12, 1, 10.0 * i) + key(KEY_F12, 0, 10.0 * i + 1))
            os.close(w)
            calls.wait(2 * (i + 1))
        assert calls.kinds == ["press", "release"] * 3
    finally:
        reader.stop()


def test_evdev_source_maps_events_and_unplug():
    from evdev import InputEvent

    class FakeDevice:
        name, path, fd = "Fake Keyboard", "/dev/input/event9", -1
        batches = [[InputEvent(3, 250000, EV_KEY, KEY_F12, 1), InputEvent(3, 250000, EV_SYN, 0, 0)],
                   BlockingIOError(errno.EAGAIN, "again"), OSError(errno.ENODEV, "No such device")]

        def read(self):
            item = self.batches.pop(0)
            if isinstance(item, Exception):
                raise item
            return iter(item)

    src = EvdevSource(FakeDevice())
    assert src.name == "Fake Keyboard (/dev/input/event9)"
    assert src.read() == [(3.25, EV_KEY, KEY_F12, 1), (3.25, EV_SYN, 0, 0)]
    assert src.read() == []
    with pytest.raises(DeviceGone) as gone:
        src.read()
    assert gone.value.errno == errno.ENODEV


def test_scan_opens_only_keyboards_with_the_keys_via_evdev(tmp_path, monkeypatch, caplog):
    """Char device nodes go through evdev.InputDevice (faked here: no /dev/input on this machine);
    a device without the key is skipped once, not re-probed on every rescan."""
    import evdev
    from evdev import InputEvent

    caplog.set_level(logging.INFO, logger="voiced.triggers.hotkey")
    r, w = os.pipe()
    os.set_blocking(r, False)
    opened = []

    class FakeInputDevice:
        def __init__(self, path, readonly=False):
            assert readonly   # never RDWR: no LED/grab side effects on the user's keyboard
            self.path = path
            self.is_kbd = path.endswith("event1")
            self.name = "Fake Keyboard" if self.is_kbd else "Fake Mouse"
            self.fd = r if self.is_kbd else os.open(os.devnull, os.O_RDONLY)
            opened.append(self.name)

        def capabilities(self):
            return {EV_KEY: [KEY_A, KEY_F12] if self.is_kbd else [0x110]}   # BTN_LEFT

        def read(self):
            data = os.read(self.fd, 4096)   # BlockingIOError when empty, as evdev does
            if not data:
                raise OSError(errno.ENODEV, "No such device")
            return (InputEvent(*rec) for rec in RECORD.iter_unpack(data))

        def active_keys(self):
            return []

        def close(self):
            os.close(self.fd)

    monkeypatch.setattr(evdev, "InputDevice", FakeInputDevice)
    os.symlink("/dev/null", tmp_path / "event0")   # character devices, like real event nodes
    os.symlink("/dev/zero", tmp_path / "event1")
    calls = Calls()
    reader = HotkeyReader("KEY_F12", calls, calls, device_dir=str(tmp_path), rescan_s=0.02).start()
    try:
        wait_until(lambda: reader.devices == [f"Fake Keyboard ({tmp_path}/event1)"])
        os.write(w, key(KEY_F12, 1, 1.0) + key(KEY_F12, 0, 1.5))
        assert [e.held_s for e in calls.wait(2)[1:]] == pytest.approx([0.5])
        (tmp_path / "event1").unlink()   # unplugged: the node goes, reads fail with ENODEV
        os.close(w)
        wait_until(lambda: reader.devices == [])
        time.sleep(0.1)   # several rescans
        assert opened == ["Fake Mouse", "Fake Keyboard"] or opened == ["Fake Keyboard", "Fake Mouse"]
        assert sum("gone" in rec.getMessage() for rec in caplog.records) == 1
    finally:
        reader.stop()


def test_key_names_are_checked_and_normalised(tmp_path, monkeypatch):
    for var in [k for k in os.environ if k.startswith("VOICED_")]:
        monkeypatch.delenv(var)
    assert HotkeySettings(key=" key_leftctrl + KEY_SPACE").key == "KEY_LEFTCTRL+KEY_SPACE"
    assert HotkeySettings().enabled is False and HotkeySettings().mode == "push_to_talk"
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[hotkey]\nenabled = true\nkey = "KEY_LEFTCTRL+KEY_SPACEBAR"\n')
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    msg = str(err.value)
    assert "hotkey.key" in msg and "KEY_SPACEBAR" in msg and str(cfg) in msg
    for bad in ("KEY_LEFTCTRL+", "REL_X", "EV_KEY"):   # empty part, not a key
        with pytest.raises(ValueError):
            HotkeySettings(key=bad)
