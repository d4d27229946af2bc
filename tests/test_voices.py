"""Named voices: the store (real files, real Silero VAD for "speech present"), the CLI as a
user runs it, and the HTTP API on the real daemon; bad reference clips are refused with the
reason, and out-of-range overrides get a 4xx naming the field."""
from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.fixtures_stt import words
from tests.fixtures_web import settle
from tests.test_responders import FakeLLM, llm_server  # noqa: F401  (the fixture)
from voiced.config import Settings, VoicesSettings
from voiced.voices import VoiceError, VoiceStore

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).parents[1]
JFK = (DATA / "jfk_16k.flac").read_bytes()     # 11 s of one speaker: a good reference clip


def wav(audio: np.ndarray, rate: int = 24_000) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, audio, rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def noise(seconds: float, rate: int = 24_000, level: float = 0.1) -> np.ndarray:
    return (np.random.default_rng(1).standard_normal(int(seconds * rate)) * level).astype(np.float32)


BAD_CLIPS = {
    "silence": (lambda: wav(np.zeros(24_000 * 5, np.float32)), "too quiet"),
    "0.2 s": (lambda: wav(noise(0.2)), "too short: 0.2 s"),
    "garbage bytes": (lambda: bytes(np.random.default_rng(0).integers(0, 256, 20_000, dtype=np.uint8)),
                      "not audio that can be read"),
    "10 minutes": (lambda: wav(noise(600, 16_000), 16_000), "too long: over 30 s"),
    "white noise": (lambda: wav(noise(6)), "no speech heard"),
    "8 kHz": (lambda: wav(noise(6, 8_000), 8_000), "sample rate 8000 Hz is too low"),
    "empty": (lambda: b"", "the file is empty"),
}


@pytest.fixture()
def store(tmp_path) -> VoiceStore:
    return VoiceStore(tmp_path / "voices", Settings())


# ---- the store --------------------------------------------------------------------------
def test_add_list_default_remove(store):
    voice = store.add("jfk", JFK, pitch=-2.0)
    assert voice.seconds == pytest.approx(11.0, abs=0.1) and voice.pitch == -2.0
    clip = store.clip("jfk")
    info = sf.info(clip)
    assert (info.samplerate, info.channels) == (24_000, 1)
    assert [v.name for v in store.list()] == ["jfk"] and store.default_name() is None

    store.set_default("jfk")
    style = store.style()
    assert (style.voice, style.clip, style.cache_dir, style.pitch, style.speed) == \
        ("jfk", clip, clip.parent, -2.0, 1.0)
    # a request's override beats the voice's own default, which beats [tts]
    assert store.style(pitch=3.0, speed=1.25).pitch == 3.0
    assert store.style(pitch=3.0, speed=1.25).speed == 1.25

    with pytest.raises(VoiceError, match="exists") as err:
        store.add("jfk", JFK)
    assert err.value.kind == "exists"
    store.add("jfk", JFK, speed=1.1, replace=True)
    assert store.get("jfk").speed == 1.1 and store.get("jfk").pitch is None

    store.remove("jfk")
    assert store.list() == [] and store.default_name() is None and not clip.parent.exists()
    assert store.style().clip is None
    with pytest.raises(VoiceError) as err:
        store.remove("jfk")
    assert err.value.kind == "unknown"


@pytest.mark.parametrize("case", list(BAD_CLIPS))
def test_bad_reference_clip_is_refused_with_the_reason(store, case):
    make, reason = BAD_CLIPS[case]
    with pytest.raises(VoiceError) as err:
        store.add("bad", make())
    print(f"\n{case}: {err.value}")
    assert err.value.kind == "invalid" and err.value.field == "audio"
    assert reason in str(err.value)
    assert store.list() == [] and not store.folder("bad").exists()


@pytest.mark.parametrize("name", ["", "../etc", "a b", "x" * 33, "-lead"])
def test_bad_names_are_refused(store, name):
    with pytest.raises(VoiceError, match="voice name") as err:
        store.add(name, JFK)
    assert err.value.field == "name"


@pytest.mark.parametrize(("field", "value"), [("speed", 2.5), ("speed", 0.1), ("pitch", 7.0), ("exaggeration", -1.0)])
def test_out_of_range_controls_name_the_field(store, field, value):
    with pytest.raises(VoiceError, match=f"{field} = {value:g} is out of range") as err:
        store.style(**{field: value})
    assert err.value.field == field


def test_missing_clip_falls_back_and_says_so(store, caplog):
    store.add("gone", JFK)
    store.set_default("gone")
    store.clip("gone").unlink()
    with caplog.at_level(logging.WARNING):
        style = store.style()
    assert style.voice == "gone" and style.clip is None
    assert "gone has no reference clip" in caplog.text


def test_damaged_index_means_no_voices_not_a_crash(store, caplog):
    store.add("jfk", JFK)
    (store.root / "index.json").write_text("{not json")
    with caplog.at_level(logging.ERROR):
        assert store.list() == [] and store.style().clip is None
    assert "unreadable" in caplog.text


# ---- the CLI ------------------------------------------------------------------------------
def voiced(*args: str, state: Path, check_rc: int | None = 0) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_STATE_HOME": str(state)}
    env = {k: v for k, v in env.items() if not k.startswith("VOICED_") or k == "VOICED_MODELS_DIR"}
    proc = subprocess.run([sys.executable, "-m", "voiced", *args], capture_output=True, text=True, env=env,
                          timeout=120, check=False)
    if check_rc is not None:
        assert proc.returncode == check_rc, proc.stderr
    return proc


def test_cli_voices_and_say_with_overrides(tmp_path):
    state = tmp_path / "state"
    clip = tmp_path / "jfk.flac"
    clip.write_bytes(JFK)
    assert "no voices in" in voiced("voices", "list", state=state).stdout
    assert "added jfk (11.0 s)" in voiced("voices", "add", "jfk", str(clip), "--pitch", "-1", state=state).stdout
    assert (state / "voiced" / "voices" / "jfk" / "reference.wav").is_file()
    voiced("voices", "default", "jfk", state=state)
    listing = voiced("voices", "list", state=state).stdout
    assert "* jfk" in listing and "pitch -1" in listing

    silent = tmp_path / "silent.wav"
    silent.write_bytes(wav(np.zeros(24_000 * 5, np.float32)))
    bad = voiced("voices", "add", "quiet", str(silent), state=state, check_rc=1)
    assert "too quiet" in bad.stderr
    assert "no voice named 'nope'" in voiced("voices", "default", "nope", state=state, check_rc=1).stderr

    out_of_range = voiced("say", "--speed", "3", "hello", state=state, check_rc=2)
    assert "--speed" in out_of_range.stderr and "out of range (0.5 to 2)" in out_of_range.stderr
    unknown = voiced("say", "--voice", "nope", "hello", state=state, check_rc=2)
    assert "no voice named 'nope'" in unknown.stderr

    plain, fast = tmp_path / "plain.wav", tmp_path / "fast.wav"
    text = "Please open the window and bring me a glass of water."
    voiced("say", "--out", str(plain), text, state=state)
    voiced("say", "--voice", "jfk", "--speed", "1.5", "--pitch", "-2", "--out", str(fast), text, state=state)
    ratio = sf.info(plain).duration / sf.info(fast).duration
    print(f"\nsay --speed 1.5: {sf.info(plain).duration:.2f} s -> {sf.info(fast).duration:.2f} s ({ratio:.2f}x)")
    assert ratio == pytest.approx(1.5, rel=0.1)

    assert "removed jfk" in voiced("voices", "remove", "jfk", state=state).stdout
    assert not (state / "voiced" / "voices" / "jfk").exists()
    voiced("voices", "remove", "jfk", state=state, check_rc=1)


# ---- the HTTP API ---------------------------------------------------------------------------
def add(http, name: str, data: bytes, **fields):
    form = {"name": name, **{k: str(v) for k, v in fields.items()}}
    return http.post("/api/voices", data=form, files={"audio": ("clip.flac", data, "audio/flac")})


@pytest.fixture()
def api(http, daemon):
    """The shared daemon's voices, emptied before and after each test."""
    def clear():
        for v in daemon.voices.list():
            daemon.voices.remove(v.name)
    clear()
    yield http
    clear()


def test_api_add_list_default_remove(api, daemon):
    assert api.get("/api/voices").json()["voices"] == []
    created = add(api, "jfk", JFK, speed=1.2)
    assert created.status_code == 201, created.text
    assert created.json()["name"] == "jfk" and created.json()["speed"] == 1.2
    assert add(api, "jfk", JFK).status_code == 409

    assert api.put("/api/voices/default", json={"name": "jfk"}).status_code == 200
    listing = api.get("/api/voices").json()
    assert listing["default"] == "jfk" and listing["engine"] == daemon.tts.info.name
    assert [(v["name"], v["default"]) for v in listing["voices"]] == [("jfk", True)]
    assert daemon.default_style().voice == "jfk"

    assert api.post("/api/say", json={"text": "Hello.", "voice": "jfk", "pitch": -2}).status_code == 202
    settle(daemon)
    assert daemon.pipeline.turns[-1].outcome.startswith(("spoken", "not played"))

    assert api.put("/api/voices/default", json={"name": "nope"}).status_code == 404
    assert api.delete("/api/voices/jfk").json() == {"removed": "jfk"}
    assert api.get("/api/voices").json() == {"default": None, "voices": [], "engine": daemon.tts.info.name}
    missing = api.delete("/api/voices/jfk")
    assert missing.status_code == 404 and "no voice named 'jfk'" in missing.json()["error"]


@pytest.mark.parametrize("case", ["silence", "0.2 s", "garbage bytes", "white noise"])
def test_api_refuses_a_bad_clip_with_the_reason(api, daemon, case):
    make, reason = BAD_CLIPS[case]
    response = add(api, "bad", make())
    assert response.status_code == 422, response.text
    assert response.json()["error"].startswith("audio: reference clip refused") and reason in response.json()["error"]
    assert api.get("/api/voices").json()["voices"] == []
    assert api.get("/healthz").status_code == 200


def test_api_refuses_bad_names_and_values(api):
    assert "name: voice name" in add(api, "../x", JFK).json()["error"]
    response = add(api, "ok", JFK, pitch=9)
    assert response.status_code == 422 and response.json()["error"].startswith("pitch: pitch = 9 is out of range")
    assert "field 'speed' must be a number" in add(api, "ok", JFK, speed="fast").json()["error"]
    no_audio = api.post("/api/voices", data={"name": "ok"}, files={"other": ("x", b"1", "text/plain")})
    assert no_audio.status_code == 422 and "no field named 'audio'" in no_audio.json()["error"]


@pytest.mark.parametrize(("body", "field"), [
    ({"speed": 2.5}, "speed"), ({"speed": 0.2}, "speed"), ({"pitch": -7}, "pitch"), ({"pitch": "high"}, "pitch"),
    ({"exaggeration": 3}, "exaggeration"), ({"voice": "nobody"}, "voice"),
])
def test_say_out_of_range_override_is_422_naming_the_field(api, daemon, body, field):
    response = api.post("/api/say", json={"text": "Hello.", **body})
    assert response.status_code == 422, response.text
    assert field in response.json()["error"]
    assert daemon.pipeline.state.value == "idle"


@pytest.mark.parametrize(("fields", "message"), [
    ({"speed": "9"}, "speed: speed = 9 is out of range"), ({"pitch": "-6.5"}, "pitch: pitch = -6.5 is out of range"),
    ({"speed": "fast"}, "field 'speed' must be a number"), ({"voice": "nobody"}, "voice: no voice named 'nobody'"),
])
def test_utterance_out_of_range_override_is_422_naming_the_field(api, recordings, fields, message):
    response = api.post("/api/utterance", data=fields,
                        files={"audio": ("rec.webm", recordings["webm"].read_bytes(), "audio/webm")})
    assert response.status_code == 422, response.text
    assert message in response.json()["error"]


def test_utterance_reply_comes_at_the_speed_asked(api, recordings):
    """The override travels daemon -> recovering engine -> fallback TTS -> Piper."""
    durations = {}
    for speed in ("1.0", "1.5"):
        response = api.post("/api/utterance", data={"speed": speed},
                            files={"audio": ("rec.webm", recordings["webm"].read_bytes(), "audio/webm")})
        assert response.status_code == 200, response.text
        assert "fellow americans" in words(response.json()["transcript"])
        durations[speed] = sf.info(io.BytesIO(api.get(response.json()["audio_url"]).content)).duration
    ratio = durations["1.0"] / durations["1.5"]
    print(f"\nutterance reply: {durations} -> {ratio:.2f}x")
    assert ratio == pytest.approx(1.5, rel=0.1)


# ---- the responder's style tag -----------------------------------------------------------------
def test_responder_style_tag_is_bounded_by_config(store):
    from voiced.voices import hints

    store.add("jfk", JFK)
    off = VoicesSettings()
    assert hints.styled("[voice=jfk speed=1.2] Hi.", store, off) == ("[voice=jfk speed=1.2] Hi.", None)
    on = VoicesSettings(responder_styles=True)
    text, style = hints.styled("[voice=jfk speed=9 pitch=-2 emotion=0.8] Sure.", store, on)
    assert text == "Sure." and (style.voice, style.speed, style.pitch, style.exaggeration) == ("jfk", 2.0, -2.0, 0.8)
    only_alice = VoicesSettings(responder_styles=True, responder_voices=("alice",))
    text, style = hints.styled("[voice=jfk] Sure.", store, only_alice)
    assert text == "Sure." and style.voice == "" and style.clip is None
    assert hints.styled("No tag here.", store, on) == ("No tag here.", None)
    assert "voice=jfk" in hints.instruction(on, ["jfk"]) and "jfk" not in hints.instruction(only_alice, ["jfk"])
    assert json.dumps(hints.split_tag("[speed=1.1, pitch=+1] x")[1]) == '{"speed": "1.1", "pitch": "+1"}'


def test_openai_responder_chooses_the_reply_style_within_bounds(api, daemon, recordings, llm_server,  # noqa: F811
                                                                monkeypatch):
    """A real HTTP chat-completions server answers with a style tag: the daemon tells it the
    rule in the system prompt, strips the tag, and speaks at the (clamped) speed it asked."""
    from voiced.config import ResponderSettings
    from voiced.responder import make_responder

    responder = ResponderSettings(kind="openai", openai_url=llm_server)
    styled = daemon.settings.model_copy(update={
        "responder": responder, "voices": daemon.settings.voices.model_copy(update={"responder_styles": True})})
    monkeypatch.setattr(daemon, "settings", styled)
    monkeypatch.setattr(daemon, "responder", make_responder(responder))
    text = "Here is a longer answer, so that its length can be measured well enough."
    durations = {}
    for asked, tag in (("slow", "[speed=0.5]"), ("fast", "[speed=5 pitch=2]")):   # 5 is clamped to 2
        monkeypatch.setattr(FakeLLM, "answer", f"{tag} {text}")
        response = api.post("/api/utterance", files={"audio": ("r.webm", recordings["webm"].read_bytes(),
                                                                "audio/webm")})
        assert response.status_code == 200, response.text
        assert response.json()["reply"] == text                       # the tag is not spoken
        durations[asked] = sf.info(io.BytesIO(api.get(response.json()["audio_url"]).content)).duration
    assert "You may start a reply with one tag" in FakeLLM.seen[-1]["body"]["messages"][0]["content"]
    ratio = durations["slow"] / durations["fast"]
    print(f"\nresponder-chosen speed 0.5 vs 5 (clamped to 2): {durations} -> {ratio:.2f}x")
    assert ratio == pytest.approx(4.0, rel=0.12)


def test_config_speed_and_pitch_are_the_defaults_and_are_checked(tmp_path):
    from voiced.config import ConfigError, TtsSettings, load_settings

    store = VoiceStore(tmp_path / "voices", Settings(tts=TtsSettings(speed=1.3, pitch=-2)))
    assert (store.style().speed, store.style().pitch) == (1.3, -2)   # [tts] when no voice is chosen
    store.add("jfk", JFK, pitch=1.0)
    assert (store.style("jfk").speed, store.style("jfk").pitch) == (1.3, 1.0)   # the voice's own pitch
    bad = tmp_path / "bad.toml"
    bad.write_text("[tts]\nspeed = 4.0\npitch = -9\n")
    with pytest.raises(ConfigError) as err:
        load_settings(bad)
    assert "tts.speed: Input should be less than or equal to 2" in str(err.value)
    assert "tts.pitch: Input should be greater than or equal to -6" in str(err.value)
