"""`voiced doctor`: can the daemon work here? A table of checks, exit 1 if it could not."""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import Settings, models_dir


@dataclass
class Check:
    area: str
    ok: bool | None      # None = only a warning (the daemon still works)
    what: str
    fix: str = ""


def _input_check(settings: Settings, listen_s: float) -> Check:
    from .audio.devices import find_device, new_pyaudio, open_stream
    from .audio.dsp import rms_dbfs

    pa = new_pyaudio()
    try:
        index, name = find_device(pa, settings.audio.input_device, "input")
        stream, choice = open_stream(pa, index, name, "input", 16_000, 1280)
        level = ""
        if listen_s > 0:
            frames = int(choice.rate * listen_s)
            raw = stream.read(frames, exception_on_overflow=False)
            pcm = np.frombuffer(raw, dtype=np.int16).astype(np.float32) / 32768.0
            level = f", level {rms_dbfs(pcm):.0f} dBFS over {listen_s:g} s"
        stream.close()
        return Check("microphone", True, f"{name!r} opens at {choice.rate} Hz, {choice.channels} ch{level}")
    except OSError as exc:
        return Check("microphone", False, str(exc), "check the audio server (pactl info) and audio.input_device")
    finally:
        pa.terminate()


def _output_check(settings: Settings) -> Check:
    from .audio.devices import find_device, new_pyaudio, open_stream

    pa = new_pyaudio()
    try:
        index, name = find_device(pa, settings.audio.output_device, "output")
        stream, choice = open_stream(pa, index, name, "output", settings.audio.output_rate, 1200)
        stream.close()
        return Check("speaker", True, f"{name!r} opens at {choice.rate} Hz")
    except OSError as exc:
        return Check("speaker", None, str(exc), "replies cannot be heard; check audio.output_device")
    finally:
        pa.terminate()


def _gpu_check() -> Check:
    try:
        import torch
    except ImportError:
        return Check("gpu", None, "torch is not installed", "run scripts/setup.sh")
    if not torch.cuda.is_available():
        return Check("gpu", None, f"no CUDA device (torch {torch.__version__}); models run on the CPU")
    props = torch.cuda.get_device_properties(0)
    free, total = torch.cuda.mem_get_info()
    return Check("gpu", True, f"{props.name}, {free / 2**30:.1f} of {total / 2**30:.1f} GiB free, torch {torch.__version__}")


def model_checks(settings: Settings, rows) -> list[Check]:
    """A row per model: a FAIL if the daemon needs it and it is missing, a warning if only an
    optional part does, and nothing to fetch for what only a remote service needs."""
    checks = []
    local = settings.wyoming.fallback_local   # a remote engine without fallback needs no local weights
    required = {"vad"} | {role for role in ("stt", "wake")
                          if local or getattr(settings, role).engine != "wyoming"}
    for row in rows:
        role = "wake" if row.name.startswith("wake") else row.name.split("-")[0]
        needed = row.name in required or role in required
        if not needed and not row.ready and getattr(getattr(settings, role, None), "engine", "") == "wyoming":
            # e.g. wake word ok_nabu, which only the remote has: nothing to fetch here
            uri = getattr(settings, role).wyoming_uri
            checks.append(Check(f"model {row.name}", True, f"not needed here: {uri} does the {role.upper()} "
                                                           "([wyoming] fallback_local = false)"))
            continue
        ok = row.ready if needed else (True if row.ready else None)
        checks.append(Check(f"model {row.name}", ok, f"{row.model} ({row.source})" if row.ready else row.model,
                            row.detail or ("" if row.ready else "run: voiced models fetch")))
    return checks


def gather(settings: Settings, config_path: Path, listen_s: float = 1.0) -> list[Check]:
    from .engines.factory import _tts_candidates
    from .models.registry import status_all

    checks = [Check("config", True, str(config_path))]
    checks.append(_input_check(settings, listen_s))
    checks.append(_output_check(settings))
    checks.append(_gpu_check())
    checks.extend(model_checks(settings, status_all(settings)))
    checks.append(_tts_check(settings, _tts_candidates))
    language = _languages_check(settings)
    if language is not None:
        checks.append(language)
    checks.extend(wyoming_checks(settings))
    checks.append(Check("models dir", True, str(models_dir(settings))))
    return checks


def _tts_check(settings: Settings, candidates) -> Check:
    """Which engine would speak, and what takes over if it fails."""
    from .config import with_section

    has_espeak = shutil.which("espeak-ng") is not None
    if settings.tts.engine == "wyoming":
        local = candidates(with_section(settings, "tts", engine="auto")) if settings.wyoming.fallback_local else []
        then = ", ".join(local) if local else "nothing: [wyoming] fallback_local = false"
        return Check("tts", True, f"would speak with wyoming at {settings.tts.wyoming_uri} (then: {then})")
    tts = candidates(settings)
    return Check("tts", True if tts[0] != "espeak" or has_espeak else False,
                 f"would speak with {tts[0]} (then: {', '.join(tts[1:]) or 'nothing'})")


def _languages_check(settings: Settings) -> Check | None:
    """With language detection on: which voice answers each language (None with one forced)."""
    from .engines.language_voices import espeak_languages, voice_for
    from .engines.tts_pico import INSTALL, VOICES as PICO, pico_languages

    if settings.stt.forced_language:
        return None
    home = (settings.stt.allowed_languages[:1] or ("en",))[0]
    others = [c for c in settings.stt.allowed_languages if c != home] or sorted(set(PICO) - {home})
    pico, espeak = pico_languages(), espeak_languages()
    voices, robotic = [], []
    for code in others:
        spec = voice_for(settings, code, pico, espeak)
        if code in settings.tts.voices_by_language:
            voices.append(f"{code}: {spec}")
        elif spec is None:
            voices.append(f"{code}: the default voice (none for it)")
        else:
            voices.append(f"{code}: {'pico' if spec.startswith('pico:') else 'espeak-ng'}")
            if spec.startswith("espeak:") and code in PICO:
                robotic.append(code)
    scope = "detected among " + ", ".join(settings.stt.allowed_languages) if settings.stt.allowed_languages else "auto"
    detail = f"{scope}; replies in {'; '.join(voices)}" + ("" if settings.stt.allowed_languages else "; others: espeak-ng")
    if robotic:
        return Check("languages", None, detail, f"{', '.join(robotic)} would sound robotic: {INSTALL}")
    return Check("languages", True, detail)


def wyoming_checks(settings: Settings) -> list[Check]:
    """Each remote Wyoming service in use: reachable, and offering what is configured (the
    TTS voice spoken once, the wake words in its list)."""
    from .engines.stt_wyoming import WyomingSTT
    from .engines.tts_wyoming import WyomingTTS
    from .triggers.wake_wyoming import check_wake_offer, wake_key
    from .wyoming.client import RemoteError, WyomingRequests

    checks = []
    fallback = "the local models answer meanwhile" if settings.wyoming.fallback_local else "no fallback"
    for role in ("stt", "tts", "wake"):
        section = getattr(settings, role)
        if section.engine != "wyoming":
            continue
        uri = section.wyoming_uri
        try:
            if role == "stt":
                what = WyomingSTT(settings).load().model
            elif role == "tts":
                what = WyomingTTS(settings).load().model
            else:
                offered = check_wake_offer(WyomingRequests(uri, settings.wyoming).describe(), list(section.models), uri)
                missing = [n for n in section.models if offered and wake_key(n) not in offered]
                what = ", ".join(offered.get(wake_key(n), n) for n in section.models if n not in missing)
                if missing:
                    checks.append(Check(f"remote {role}", None, f"{uri}: {what}; not {', '.join(missing)}",
                                        f"those are not heard: it has {', '.join(sorted(offered.values()))}"))
                    continue
        except RemoteError as exc:        # it answers, but not with what is configured
            checks.append(Check(f"remote {role}", False, str(exc), f"{fallback} until it is fixed"))
            continue
        except Exception as exc:  # noqa: BLE001 - any other failure means "not usable now"
            text = str(exc) if str(exc).startswith(uri) else f"{uri}: {exc}"
            checks.append(Check(f"remote {role}", False, text, f"start the Wyoming service there ({fallback})"))
            continue
        checks.append(Check(f"remote {role}", True, f"{uri}: {what}"))
    return checks


def run_doctor(settings: Settings, config_path: Path, listen_s: float = 1.0) -> int:
    t0 = time.monotonic()
    checks = gather(settings, config_path, listen_s)
    w = max(len(c.area) for c in checks)
    for c in checks:
        mark = {True: " ok ", False: "FAIL", None: "warn"}[c.ok]
        print(f"[{mark}] {c.area:<{w}}  {c.what}")
        if c.fix and c.ok is not True:
            print(f"       {'':<{w}}  -> {c.fix}")
    failed = [c for c in checks if c.ok is False]
    print(f"\n{len(failed)} problem(s); checked in {time.monotonic() - t0:.1f} s")
    return 1 if failed else 0
