"""No self-hearing: the daemon's reply is looped back into its own microphone (PulseAudio
module-loopback from the speaker monitor into the mic), and the reply itself contains the
wake word. The daemon must not wake on its own voice nor take its echo as a follow-up."""
from __future__ import annotations

import time

import pytest

from support.pulse import PulseHarness
from test_e2e_daemon import DaemonProcess, utterance

pytestmark = pytest.mark.e2e


def test_own_voice_with_the_wake_word_does_not_trigger(tmp_path, piper_voice):
    harness = PulseHarness().start()
    # The room: everything the speaker plays reaches the microphone 60 ms later.
    harness.pactl("load-module", "module-loopback", "source=spk.monitor", "sink=mic16", "latency_msec=60")
    env = {k: v for k, v in harness.env.items() if not k.startswith("VOICED_") or k == "VOICED_MODELS_DIR"}
    env.update(VOICED_WEB__ENABLED="false", VOICED_VAD__NO_SPEECH_TIMEOUT_S="3")
    daemon = DaemonProcess(env, tmp_path)
    try:
        daemon.wait_for(r"listening for hey_jarvis", timeout=240)
        # The builtin responder echoes this, so the reply says "hey Jarvis" out loud.
        wav = utterance(tmp_path, [0.5, "hey jarvis", 0.7, ("piper", "Please repeat after me: hey Jarvis."), 1.0],
                        piper_voice)
        mark = len(daemon.lines)
        harness.play_into_mic(wav)
        line = daemon.wait_for(r"turn \d+ \(wake:hey_jarvis\) answered: .*", timeout=90, start=mark).group(0)
        assert "jarvis" in line.lower().split("said", 1)[1], f"the reply should contain the wake word: {line}"
        time.sleep(10)   # the reply's echo, the follow-up window and a margin
        later = daemon.lines[mark:]
        wakes = [x for x in later if "wake word hey_jarvis" in x and "ignored" not in x]
        echoes = [x for x in later if "ignored: the reply itself said it" in x]
        turns = [x for x in later if " turn " in x and "answered" in x]
        follow = [x for x in later if "(follow-up)" in x]
        print("\n".join(wakes + echoes + turns + follow))
        # The mic may or may not score the echo over the threshold (it varies run to run);
        # when it does, the echo guard must be what stopped it.
        assert len(wakes) == 1, "the daemon woke on its own voice (or barged in on it)"
        assert len(turns) == 1, "its own reply was answered"
        assert follow and all("window closed" in x and "heard ''" in x for x in follow), \
            "the reply's echo was taken as a follow-up request"
    finally:
        assert daemon.stop() == 0
        harness.stop()
