"""Settings: one frozen tree, built once from a TOML file and VOICED_* environment variables.

Precedence (highest first): VOICED_<SECTION>__<KEY> env vars, then the first file found of
--config, $VOICED_CONFIG, /etc/voiced/voiced.toml, ~/.config/voiced/voiced.toml, and the
shipped default (voiced/default_config/voiced.toml, same text as config/voiced.toml).
"""
from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

EX_CONFIG = 78  # sysexits.h: configuration error; systemd unit uses RestartPreventExitStatus=78
SHIPPED_DEFAULT = Path(__file__).parent / "default_config" / "voiced.toml"
SEARCH_PATH = (Path("/etc/voiced/voiced.toml"), Path("~/.config/voiced/voiced.toml"))

Device = Union[int, str]


class Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AudioSettings(Section):
    input_device: Device = "default"      # name (substring), index, or "default"
    output_device: Device = "default"
    chunk_ms: int = Field(80, ge=10, le=500)   # 80 ms = openWakeWord's frame
    output_rate: int = Field(24_000, ge=8_000, le=192_000)
    remove_dc: bool = True
    normalize_input: bool = True
    input_target_dbfs: float = Field(-20.0, ge=-60, le=0)
    noise_suppression: bool = False
    min_level_dbfs: float = Field(-55.0, le=0)      # quieter captures are dropped as empty
    max_clipped_fraction: float = Field(0.05, ge=0, le=1)
    # Replies are levelled to this integrated loudness (ITU-R BS.1770, LUFS), then scaled by
    # output_volume. The old key output_target_dbfs (active RMS) is read as its LUFS (-3 dB).
    output_target_lufs: float = Field(-21.0, ge=-40, le=-5)
    output_volume: float = Field(1.0, ge=0, le=2)
    reopen_backoff_s: float = Field(0.5, gt=0)
    reopen_backoff_max_s: float = Field(30.0, gt=0)
    read_timeout_s: float = Field(5.0, gt=0)
    save_requests_dir: str = ""   # "" = keep no audio on disk; else a WAV per request (debugging)

    @model_validator(mode="before")
    @classmethod
    def _old_level_key(cls, data):
        # On speech, -18 dBFS of active RMS measured -21 LUFS: the old key keeps its loudness.
        if isinstance(data, dict) and "output_target_dbfs" in data:
            old = data["output_target_dbfs"]
            data = {k: v for k, v in data.items() if k != "output_target_dbfs"}
            if isinstance(old, (int, float)):
                data["output_target_lufs"] = max(-40.0, min(-5.0, float(old) - 3.0))
        return data


# A list setting that also takes one string (models = "alexa" means ["alexa"]).
OneOrMany = Annotated[tuple[str, ...], BeforeValidator(lambda v: (v,) if isinstance(v, str) else v)]


def _check_wyoming_uri(engine: str, uri: str, section: str) -> None:
    """engine = "wyoming" needs a tcp://host:port address (the only transport voiced uses)."""
    if engine != "wyoming":
        return
    from urllib.parse import urlparse

    try:
        parsed = urlparse(uri)
        ok = parsed.scheme == "tcp" and bool(parsed.hostname) and parsed.port is not None
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"{section}.engine = \"wyoming\" needs {section}.wyoming_uri = \"tcp://HOST:PORT\" "
                         f"(got {uri!r})")


class WakeSettings(Section):
    engine: Literal["openwakeword", "wyoming"] = "openwakeword"   # "wyoming": a remote wake service
    wyoming_uri: str = ""                   # "tcp://gpu-box:10300" when engine = "wyoming"
    models: OneOrMany = ("hey_jarvis",)   # names or paths to .onnx/.tflite
    threshold: float = Field(0.5, gt=0, lt=1)
    trigger_level: int = Field(1, ge=1, le=10)     # frames over threshold before firing
    refractory_s: float = Field(2.0, ge=0)
    barge_in: bool = True                          # the wake word cuts a reply (echo-guarded)
    echo_threshold: float = Field(0.2, gt=0, lt=1)  # the reply's own score that marks an echo
    echo_window_s: float = Field(2.0, ge=0, le=10)
    mute_during_playback: bool = True              # used when barge_in is off
    playback_tail_s: float = Field(0.5, ge=0)


    @field_validator("models")
    @classmethod
    def _not_empty(cls, v):
        if not v:
            raise ValueError("at least one wake word model is needed")
        return v

    @model_validator(mode="after")
    def _remote_needs_uri(self):
        _check_wyoming_uri(self.engine, self.wyoming_uri, "wake")
        return self


class VadSettings(Section):
    engine: Literal["silero", "energy"] = "silero"
    threshold: float = Field(0.5, gt=0, lt=1)
    # "semantic": the end-of-turn model (Smart Turn) decides at each pause of pause_s whether the
    # speaker is done; "silence": a fixed silence_s of silence ends the request.
    end_of_turn: Literal["semantic", "silence"] = "semantic"
    pause_s: float = Field(0.2, gt=0, le=5)            # semantic: ask the model at a pause this long
    turn_threshold: float = Field(0.5, gt=0, lt=1)     # semantic: p(complete) at or above ends the turn
    incomplete_silence_s: float = Field(2.0, gt=0, le=10)   # semantic: "not done" waits at most this
    smart_turn_model: str = ""                          # "" = the fetched Smart Turn v3.2, else a path
    silence_s: float = Field(0.8, gt=0, le=10)        # silence mode: trailing silence that ends a request
    early_transcribe_s: float = Field(0.3, ge=0, le=10)  # start the answer at a pause this long (0: off)
    speculate: bool = True   # at that pause, also prepare the reply and its first sentence of speech
    max_s: float = Field(15.0, gt=0, le=120)           # hard cap on one request
    no_speech_timeout_s: float = Field(4.0, gt=0, le=60)
    preroll_s: float = Field(0.3, ge=0, le=3)


class HotkeySettings(Section):
    enabled: bool = False
    key: str = "KEY_F12"    # evdev key name, or a combination: "KEY_LEFTCTRL+KEY_SPACE"
    mode: Literal["push_to_talk", "toggle"] = "push_to_talk"
    devices: OneOrMany = ()   # event device paths; () = every keyboard that has the keys

    @field_validator("key")
    @classmethod
    def _known_key(cls, v):
        from .triggers.hotkey import validate_key   # lazy: hotkey.py is not needed to load config

        return validate_key(v)



class EarconSettings(Section):
    enabled: bool = True    # a chime when listening starts, a falling tone when a turn gives up
    volume: float = Field(0.5, ge=0, le=1)


class ConversationSettings(Section):
    follow_up_s: float = Field(4.0, ge=0, le=30)   # listen again without the wake word after a reply; 0 = off
    cancel_phrases: OneOrMany = ("never mind", "nevermind", "cancel", "stop", "forget it")



class SttSettings(Section):
    # "auto": faster-whisper (CTranslate2) when its weights are prepared, else transformers;
    # "wyoming": a remote Wyoming ASR service (wyoming_uri), the local model as fallback.
    engine: Literal["auto", "faster-whisper", "transformers", "wyoming"] = "auto"
    wyoming_uri: str = ""                   # "tcp://gpu-box:10300" when engine = "wyoming"
    model: str = "openai/whisper-base.en"   # hub id or local directory
    device: Literal["auto", "cuda", "cpu"] = "auto"
    # "en" (one language, no detection), "auto" (detected per request), or a list such as
    # ["en", "de", "fr"]: detected per request among those only.
    language: OneOrMany = ("en",)
    # Words Whisper should expect (names, rooms, the wake word): biases recognition toward them.
    vocabulary: OneOrMany = ()
    max_new_tokens: int = Field(96, ge=8, le=440)
    no_speech_threshold: float = Field(0.6, gt=0, le=1)
    warmup: bool = True
    # faster-whisper: a request shorter than this is encoded in a window of this length (or the
    # audio + 1 s) instead of Whisper's fixed 30 s: ~4x less work. 0 = always 30 s.
    short_window_s: float = Field(10.0, ge=0, le=30)

    @model_validator(mode="after")
    def _remote_needs_uri(self):
        _check_wyoming_uri(self.engine, self.wyoming_uri, "stt")
        return self

    @property
    def forced_language(self) -> str | None:
        """The one language when no detection is wanted ("en"), else None ("auto" or a list)."""
        codes = [c.strip().lower() for c in self.language if c.strip()]
        return codes[0] if len(codes) == 1 and codes[0] != "auto" else None

    @property
    def allowed_languages(self) -> tuple[str, ...]:
        """The languages detection may choose from; () = any."""
        codes = tuple(c.strip().lower() for c in self.language if c.strip() and c.strip().lower() != "auto")
        return codes if len(codes) > 1 else ()


class ResponderSettings(Section):
    kind: Literal["builtin", "command", "openai"] = "builtin"
    command: tuple[str, ...] = ()           # argv; transcript on stdin, reply on stdout
    timeout_s: float = Field(10.0, gt=0, le=600)
    openai_url: str = "http://127.0.0.1:8080/v1/chat/completions"
    openai_model: str = "local"
    openai_api_key: str = ""
    system_prompt: str = "You are a helpful voice assistant. Answer in one to three short spoken sentences."
    max_reply_chars: int = Field(600, ge=20)
    # A command may act (lights, timers): it is run before the turn is over (speculation)
    # only if you say it has no side effects.
    command_side_effect_free: bool = False


class TtsSettings(Section):
    engine: Literal["auto", "chatterbox", "piper", "espeak", "wyoming"] = "auto"
    wyoming_uri: str = ""                    # "tcp://gpu-box:10300" when engine = "wyoming"
    wyoming_voice: str = ""                  # voice to ask the remote for; "" = its default
    device: Literal["auto", "cuda", "cpu"] = "auto"
    chatterbox_on_cpu: bool = False         # Chatterbox is ~13x slower than real time on a CPU
    chatterbox_model: str = "ResembleAI/chatterbox"   # hub id or local directory
    exaggeration: float = Field(0.5, ge=0, le=2)
    temperature: float = Field(0.8, gt=0, le=5)
    cfg_weight: float = Field(0.5, ge=0, le=1)
    voice: str = ""                          # reference clip for Chatterbox; "" = built-in voice
    speed: float = Field(1.0, ge=0.5, le=2.0)    # every engine: tempo, pitch kept
    pitch: float = Field(0.0, ge=-6.0, le=6.0)   # every engine: semitones, tempo kept
    max_speech_tokens: int = Field(1000, ge=10, le=4000)
    piper_voice: str = "joe-us"              # packaged voice name or path to a .onnx
    espeak_voice: str = "en-us"
    # The voice for a reply in another language than the configured one: language -> voice,
    # "piper:<name or .onnx>", "pico:<de-DE...>" or "espeak:<espeak voice>". A language not
    # listed is spoken by SVOX Pico's voice for it when pico2wave is installed (de, fr, es, it,
    # en), else espeak-ng's, else by the default voice (and logged).
    voices_by_language: dict[str, str] = Field(default_factory=dict)
    phrase_cache_items: int = Field(64, ge=0, le=10_000)   # replies kept to replay; 0 = off

    @model_validator(mode="after")
    def _remote_needs_uri(self):
        _check_wyoming_uri(self.engine, self.wyoming_uri, "tts")
        return self


class VoicesSettings(Section):
    dir: str = ""        # "" = $STATE_DIRECTORY/voices, or $XDG_STATE_HOME (~/.local/state)/voiced/voices
    min_clip_s: float = Field(3.0, ge=1, le=30)     # reference clips shorter or longer are refused
    max_clip_s: float = Field(30.0, ge=3, le=120)
    responder_styles: bool = False   # let the responder pick a voice/speed/pitch/emotion per reply
    responder_voices: OneOrMany = ()   # which voices it may pick; () = any


    @model_validator(mode="after")
    def _clip_bounds_in_order(self):
        if self.min_clip_s > self.max_clip_s:
            raise ValueError(f"voices.min_clip_s ({self.min_clip_s:g}) is over voices.max_clip_s "
                             f"({self.max_clip_s:g}): no clip could pass")
        return self


class ModelsSettings(Section):
    dir: str = ""        # "" = $VOICED_MODELS_DIR, $CACHE_DIRECTORY/models, or ~/.cache/voiced/models
    offline: bool = False  # never try the hub; use prepared local weights only
    torch_threads: int = Field(0, ge=0, le=256)   # 0 = one less than the CPU cores (min 1)


class GpuSettings(Section):
    memory_fraction: float = Field(0.8, gt=0, le=1)   # share of the GPU's memory voiced may use
    reprobe_s: float = Field(60.0, gt=0)               # after a GPU fault, re-probe this often


class WatchdogSettings(Section):
    # The core took no step for this long = not alive (it steps at least 4 times a second, mic
    # or not: a lost microphone is degraded, not dead). frame_deadline_s is its old name.
    loop_deadline_s: float = Field(10.0, gt=0)
    stt_timeout_s: float = Field(60.0, gt=0)        # a transcription running longer is abandoned
    tts_chunk_timeout_s: float = Field(120.0, gt=0)  # each sentence of speech must come within this
    hung_stages_to_restart: int = Field(2, ge=1)    # this many abandoned stages in a row: not alive

    @model_validator(mode="before")
    @classmethod
    def _old_name(cls, data):
        # Not an alias: the defaults are merged in first, so loop_deadline_s is always present
        # and an alias would lose to it (and the old name would be "unknown").
        if isinstance(data, dict) and "frame_deadline_s" in data:
            data = {k: v for k, v in data.items() if k != "frame_deadline_s"} | {"loop_deadline_s": data["frame_deadline_s"]}
        return data


class LogSettings(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class WebSettings(Section):
    enabled: bool = True
    host: str = "127.0.0.1"                  # loopback only unless a token is set
    port: int = Field(8765, ge=1, le=65535)
    token: str = ""                          # required (>= 16 chars) when host is not loopback
    allowed_hosts: OneOrMany = ()      # extra names/IPs accepted in the Host header
    max_upload_bytes: int = Field(10_000_000, ge=1_000, le=500_000_000)
    max_upload_seconds: float = Field(30.0, gt=0, le=600)
    max_say_chars: int = Field(1000, ge=1, le=100_000)
    keep_replies: int = Field(8, ge=1, le=100)   # reply WAVs kept in memory for audio_url


    @model_validator(mode="after")
    def _token_off_loopback(self):
        # Anyone on the network could make the daemon listen or speak: demand a token there.
        from ipaddress import ip_address

        try:
            loopback = self.host == "localhost" or ip_address(self.host.strip("[]")).is_loopback
        except ValueError:
            loopback = False
        if self.enabled and not loopback and len(self.token) < 16:
            raise ValueError(f"web.host = {self.host!r} is not a loopback address: set web.token to a secret "
                             "of at least 16 characters (python3 -c 'import secrets; print(secrets.token_urlsafe(24))')")
        if self.token and len(self.token) < 16:
            raise ValueError("web.token must be at least 16 characters")
        return self


class WyomingSettings(Section):
    # The server: this daemon's STT, TTS and wake word as Wyoming services (Home Assistant).
    enabled: bool = False
    host: str = "127.0.0.1"                  # the protocol has no authentication: trusted networks only
    port: int = Field(10300, ge=1, le=65535)
    max_clients: int = Field(8, ge=1, le=256)      # connections at once; more are refused
    max_queue: int = Field(4, ge=0, le=256)        # model requests waiting; more get a "busy" error
    max_audio_s: float = Field(30.0, gt=0, le=600)  # longest audio one transcription may send
    max_text_chars: int = Field(1000, ge=1, le=100_000)
    # The client side: stt/tts engine = "wyoming" (and their wyoming_uri) use a remote service.
    fallback_local: bool = True              # load the local models too, and use them while a remote is down
    connect_timeout_s: float = Field(3.0, gt=0, le=60)
    read_timeout_s: float = Field(30.0, gt=0, le=600)   # for each event of a remote's answer
    reconnect_backoff_s: float = Field(1.0, gt=0)
    reconnect_backoff_max_s: float = Field(30.0, gt=0)


class HomeAssistantSettings(Section):
    # voiced as a Home Assistant voice satellite over the ESPHome native API (what Home
    # Assistant's ESPHome integration speaks): its wake word and microphone feed Assist.
    enabled: bool = False
    # "esphome": Home Assistant's ESPHome integration (as linux-voice-assistant); "wyoming": its
    # Wyoming integration (as wyoming-satellite).
    protocol: Literal["esphome", "wyoming"] = "esphome"
    host: str = "127.0.0.1"      # "0.0.0.0" so that Home Assistant on another machine can connect
    port: int = Field(6053, ge=1, le=65535)
    wyoming_port: int = Field(10700, ge=1, le=65535)
    name: str = "voiced"         # the device name Home Assistant shows (lower case, digits, '-')
    friendly_name: str = "voiced"
    encryption_key: str = ""     # base64 of 32 bytes (Noise); "" = plaintext, trusted networks only
    mdns: bool = True            # advertise as _esphomelib._tcp so Home Assistant discovers it
    timer_ring_s: float = Field(900.0, gt=0, le=3600)   # a finished timer rings at most this long

    @field_validator("name")
    @classmethod
    def _device_name(cls, v):
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,30}", v):
            raise ValueError("use lower-case letters, digits and '-' (up to 31), e.g. \"kitchen-voiced\"")
        return v

    @field_validator("encryption_key")
    @classmethod
    def _key(cls, v):
        import base64
        import binascii

        if v:
            try:
                raw = base64.b64decode(v, validate=True)
            except (binascii.Error, ValueError):
                raw = b""
            if len(raw) != 32:
                raise ValueError("must be the base64 of 32 random bytes: "
                                 "python3 -c 'import base64,os; print(base64.b64encode(os.urandom(32)).decode())'")
        return v


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VOICED_", env_nested_delimiter="__",
                                      frozen=True, extra="forbid", nested_model_default_partial_update=True)
    audio: AudioSettings = AudioSettings()
    wake: WakeSettings = WakeSettings()
    vad: VadSettings = VadSettings()
    hotkey: HotkeySettings = HotkeySettings()
    earcons: EarconSettings = EarconSettings()
    conversation: ConversationSettings = ConversationSettings()
    stt: SttSettings = SttSettings()
    responder: ResponderSettings = ResponderSettings()
    tts: TtsSettings = TtsSettings()
    voices: VoicesSettings = VoicesSettings()
    models: ModelsSettings = ModelsSettings()
    gpu: GpuSettings = GpuSettings()
    watchdog: WatchdogSettings = WatchdogSettings()
    log: LogSettings = LogSettings()
    web: WebSettings = WebSettings()
    wyoming: WyomingSettings = WyomingSettings()
    homeassistant: HomeAssistantSettings = HomeAssistantSettings()

    @model_validator(mode="after")
    def _command_needs_argv(self):
        if self.responder.kind == "command" and not self.responder.command:
            raise ValueError("responder.command must be set when responder.kind = \"command\"")
        return self

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings) -> tuple[PydanticBaseSettingsSource, ...]:
        sources = [init_settings, env_settings]
        toml_file = settings_cls.model_config.get("toml_file")
        if toml_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)


class ConfigError(Exception):
    """A config problem worded for the user: names the file and the key."""


def find_config(explicit: str | os.PathLike | None = None) -> Path:
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(f"config file {path} (from --config) does not exist")
        return path
    env = os.environ.get("VOICED_CONFIG")
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise ConfigError(f"config file {path} (from $VOICED_CONFIG) does not exist")
        return path
    for candidate in SEARCH_PATH:
        candidate = candidate.expanduser()
        if candidate.is_file():
            return candidate
    return SHIPPED_DEFAULT


def _describe(err: dict, path: Path) -> str:
    loc = ".".join(str(p) for p in err["loc"] if not isinstance(p, int) or len(err["loc"]) == 1)
    loc = loc or "(whole file)"
    env_name = "VOICED_" + "__".join(str(p).upper() for p in err["loc"][:2])
    origin = f"environment variable {env_name}" if env_name in os.environ else f"{path}"
    got = err.get("input")
    got_text = "" if isinstance(got, dict) or got is None else f" (got {got!r})"
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = "unknown setting (typo?)"
    return f"{loc}: {msg}{got_text} [in {origin}]"


def load_settings(explicit: str | os.PathLike | None = None) -> tuple[Settings, Path]:
    """Build the settings tree or raise ConfigError with a message that names file and key."""
    path = find_config(explicit)
    try:
        with open(path, "rb") as fh:
            tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    bound = type("FileSettings", (Settings,), {"model_config": {**Settings.model_config, "toml_file": path}})
    try:
        return bound(), path
    except ValidationError as exc:
        lines = [_describe(e, path) for e in exc.errors()]
        raise ConfigError(f"invalid config ({path}):\n  " + "\n  ".join(lines)) from None


def models_dir(settings: Settings) -> Path:
    """Where prepared weights live: config, $VOICED_MODELS_DIR, systemd's CacheDirectory, ~/.cache."""
    if settings.models.dir:
        return Path(settings.models.dir).expanduser()
    if os.environ.get("VOICED_MODELS_DIR"):
        return Path(os.environ["VOICED_MODELS_DIR"]).expanduser()
    if os.environ.get("CACHE_DIRECTORY"):   # set by systemd for CacheDirectory=voiced
        return Path(os.environ["CACHE_DIRECTORY"].split(":")[0]) / "models"
    base = Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser()
    return base / "voiced" / "models"


def state_dir(settings: Settings) -> Path:
    """Where voiced keeps what users create (voices): systemd's StateDirectory, else XDG's."""
    if os.environ.get("STATE_DIRECTORY"):   # set by systemd for StateDirectory=voiced
        return Path(os.environ["STATE_DIRECTORY"].split(":")[0])
    return Path(os.environ.get("XDG_STATE_HOME", "~/.local/state")).expanduser() / "voiced"


def voices_dir(settings: Settings) -> Path:
    return Path(settings.voices.dir).expanduser() if settings.voices.dir else state_dir(settings) / "voices"


def with_section(settings: Settings, section: str, **update) -> Settings:
    """A copy of the (frozen) settings with some fields of one section replaced."""
    return settings.model_copy(update={section: getattr(settings, section).model_copy(update=update)})
