"""The accuracy set for `voiced bench --parts accuracy` (also `scripts/make_accuracy_set.py`):
the same short assistant requests in English, German, French and Spanish, each spoken by
synthetic voices (espeak-ng voice variants at two speeds; Piper's packaged voice for English;
SVOX Pico's voice per language, British for English, when pico2wave is installed)
and mixed with noise at a known SNR: pink and brown noise (a fan, a room) and babble (5 other
espeak sentences at once) at 20, 10 and 5 dB. WAVs + manifest.json in a cache folder,
regenerated on demand when the specification changes, never committed.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import time
import zlib
from pathlib import Path

import numpy as np

from .common import RATE, Skip, espeak, speech_bounds

VERSION = 1
SPEECH_DBFS = -24.0           # active speech level of every clean clip
PAD_S = 0.5                   # silence around the speech, as VAD segments keep

REQUESTS: dict[str, tuple[str, ...]] = {
    "en": ("What time is it?",
           "Set a timer for ten minutes.",
           "What is the weather like tomorrow?",
           "Turn off the lights in the kitchen.",
           "Play some music in the living room.",
           "Remind me to call my mother tonight.",
           "How long does it take to drive to the airport?",
           "Add milk and bread to the shopping list."),
    "de": ("Wie spät ist es?",
           "Stell einen Timer auf zehn Minuten.",
           "Wie wird das Wetter morgen?",
           "Mach das Licht in der Küche aus.",
           "Spiel etwas Musik im Wohnzimmer.",
           "Erinnere mich daran, heute Abend meine Mutter anzurufen.",
           "Wie lange dauert die Fahrt zum Flughafen?",
           "Setz Milch und Brot auf die Einkaufsliste."),
    "fr": ("Quelle heure est-il ?",
           "Mets un minuteur de dix minutes.",
           "Quel temps fera-t-il demain ?",
           "Éteins la lumière dans la cuisine.",
           "Mets de la musique dans le salon.",
           "Rappelle-moi d'appeler ma mère ce soir.",
           "Combien de temps faut-il pour aller à l'aéroport ?",
           "Ajoute du lait et du pain à la liste de courses."),
    "es": ("¿Qué hora es?",
           "Pon un temporizador de diez minutos.",
           "¿Qué tiempo hará mañana?",
           "Apaga las luces de la cocina.",
           "Pon algo de música en el salón.",
           "Recuérdame llamar a mi madre esta noche.",
           "¿Cuánto se tarda en llegar al aeropuerto?",
           "Añade leche y pan a la lista de la compra."),
}
LANGUAGES = tuple(REQUESTS)

# (language, voice id, engine, engine arguments). espeak: voice+variant and words per minute.
# Piper: only what PiperEngine exposes (its packaged voice; it has no length/noise scale knob,
# and a time-stretch of its output would not be another voice).
VOICES: tuple[tuple[str, str, str, dict], ...] = tuple(
    (lang, f"espeak {v} s{s}", "espeak", {"voice": v, "speed": s})
    for lang, ev in (("en", "en-us"), ("de", "de"), ("fr", "fr"), ("es", "es"))
    for v, s in ((f"{ev}+m3", 175), (f"{ev}+f3", 140))
) + (("en", "piper joe-us", "piper", {}),) + tuple(
    (lang, f"pico {voice}", "pico", {"voice": voice})
    for lang, voice in (("en", "en-GB"), ("de", "de-DE"), ("fr", "fr-FR"), ("es", "es-ES")))

# Babble: other sentences (never the requests), in the four languages, by other voices.
BABBLE_TEXTS = (
    ("en-us+m1", "The meeting was moved to Thursday afternoon because of the holiday."),
    ("en-gb+f2", "She said the new bakery on the corner opens at seven every morning."),
    ("de+m2", "Ich habe gestern einen langen Spaziergang am Fluss gemacht."),
    ("de+f4", "Wir müssen noch die Fenster im Dachgeschoss streichen."),
    ("fr+m4", "Nous avons visité le musée avant le déjeuner avec les enfants."),
    ("es+f1", "El tren llegó con veinte minutos de retraso a la estación."),
    ("en-us+m7", "Could you send me the report before the end of the week, please?"),
)
BABBLE_TALKERS = 5
SNRS = (20, 10, 5)
CONDITIONS = ("clean",) + tuple(f"{kind} {snr} dB" for kind in ("pink", "brown", "babble") for snr in SNRS)

def default_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "voiced-tests" / "accuracy"


# ---- the set ------------------------------------------------------------------------------
def _spec(languages, voices, conditions, requests) -> dict:
    return {"version": VERSION, "languages": list(languages), "voices": list(voices),
            "conditions": list(conditions), "requests": requests, "speech_dbfs": SPEECH_DBFS, "pad_s": PAD_S}


def _seed(*parts) -> int:
    return zlib.crc32("|".join(map(str, parts)).encode())


def _level(audio: np.ndarray, dbfs: float) -> np.ndarray:
    """float32 speech scaled so its active span (first to last loud sample) is at `dbfs` RMS."""
    audio = np.asarray(audio, dtype=np.float64)
    a, b = speech_bounds(audio)
    span = audio[int(a * RATE):int(b * RATE)]
    return (audio * (10 ** (dbfs / 20) / np.sqrt(np.mean(span ** 2)))).astype(np.float32)


def _pink(n: int, rng) -> np.ndarray:
    from scipy.signal import lfilter
    white = rng.normal(size=n + RATE)
    return lfilter([0.049922035, -0.095993537, 0.050612699, -0.004408786],
                   [1, -2.494956002, 2.017265875, -0.522189400], white)[RATE:]


def _brown(n: int, rng) -> np.ndarray:
    """1/f^2 noise: white through a leaky integrator (no drift), a fan's rumble."""
    from scipy.signal import lfilter
    return lfilter([1.0], [1.0, -0.995], rng.normal(size=n + RATE))[RATE:]


def _babble(n: int, rng, sources: list[np.ndarray]) -> np.ndarray:
    """BABBLE_TALKERS sentences at once, each looped from a random offset, at equal levels."""
    out = np.zeros(n)
    for k in rng.choice(len(sources), size=BABBLE_TALKERS, replace=False):
        s = sources[k]
        s = np.concatenate([s, np.zeros(int(0.3 * RATE), np.float32)])
        looped = np.tile(s, n // len(s) + 2)
        start = int(rng.integers(0, len(s)))
        out += looped[start:start + n]
    return out


def mix(speech: np.ndarray, condition: str, seed: int, babble_sources: list[np.ndarray] | None = None) -> np.ndarray:
    """Clean speech (float32, levelled, padded) + noise at the condition's SNR, measured
    against the speech's active span; the noise covers the whole clip."""
    if condition == "clean":
        return speech
    kind, snr, _db = condition.split()
    rng = np.random.default_rng(seed)
    n = speech.size
    noise = {"pink": lambda: _pink(n, rng), "brown": lambda: _brown(n, rng),
             "babble": lambda: _babble(n, rng, babble_sources)}[kind]()
    a, b = speech_bounds(speech)
    p_speech = np.mean(speech[int(a * RATE):int(b * RATE)].astype(np.float64) ** 2)
    noise = noise * np.sqrt(p_speech / 10 ** (float(snr) / 10) / np.mean(noise ** 2))
    return (speech + noise).astype(np.float32)


def _render(engine: str, args: dict, text: str, piper) -> np.ndarray:
    if engine == "espeak":
        return espeak(text, args["voice"], args["speed"]).astype(np.float32) / 32768
    if engine == "pico":
        from voiced.engines.tts_pico import PicoEngine

        pico = PicoEngine(args["voice"])
        try:
            chunks = list(pico.synthesize(text))
        finally:
            pico.close()
        return np.concatenate([c.audio for c in chunks])      # 16 kHz already
    from voiced.audio.dsp import resample

    chunks = list(piper.synthesize(text))
    return resample(np.concatenate([c.audio for c in chunks]), chunks[0].sample_rate, RATE)


def build_set(out: Path | None = None, settings=None, *, languages=LANGUAGES, voices=None, conditions=CONDITIONS,
              requests: int = 8, force: bool = False, echo=None) -> dict:
    """Write the WAVs and manifest.json under `out` (default_dir()); reuse a complete set built
    with the same specification unless `force`. Returns the manifest."""
    from voiced.audio.decode import write_wav

    out = Path(out or default_dir())
    voices = [v for v in VOICES if v[0] in languages and (voices is None or v[1] in voices)]
    if shutil.which("pico2wave") is None and any(v[2] == "pico" for v in voices):
        if echo:
            echo("accuracy set: without SVOX Pico's voices (pico2wave is not installed)", file=sys.stderr)
        voices = [v for v in voices if v[2] != "pico"]
    spec = _spec(languages, [v[1] for v in voices], conditions, requests)
    path = out / "manifest.json"
    if not force and path.is_file():
        try:
            old = json.loads(path.read_text())
            if old.get("spec") == spec and all((out / f["file"]).is_file() for f in old["files"]):
                return old
        except (ValueError, KeyError):
            pass
    if shutil.which("espeak-ng") is None:
        raise Skip("espeak-ng is not installed (apt-get install espeak-ng)")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    started = time.monotonic()
    piper = None
    if any(v[2] == "piper" for v in voices):
        from voiced.config import Settings
        from voiced.engines.tts_piper import PiperEngine

        piper = PiperEngine((settings or Settings()).tts)
        piper.load()
    babble = [_level(espeak(t, v, 160).astype(np.float32) / 32768, SPEECH_DBFS) for v, t in BABBLE_TEXTS]
    files = []
    try:
        for lang, vid, engine, args in voices:
            for i, text in enumerate(REQUESTS[lang][:requests]):
                raw = _render(engine, args, text, piper)
                pad = np.zeros(int(PAD_S * RATE), np.float32)
                clean = np.concatenate([pad, _level(raw, SPEECH_DBFS), pad])
                a, b = speech_bounds(clean)
                for cond in conditions:
                    audio = mix(clean, cond, _seed(lang, vid, i, cond), babble)
                    peak = float(np.max(np.abs(audio)))
                    if peak > 0.99:
                        audio = audio * (0.99 / peak)      # never clip: SNR is a ratio, it is kept
                    name = re.sub(r"[^\w.-]+", "_", f"{lang}-{vid}-{i}-{cond}") + ".wav"
                    write_wav(out / name, audio, RATE)
                    files.append({"file": name, "id": f"{lang}/{vid}/{i}", "text": text, "language": lang,
                                  "voice": vid, "engine": engine, "condition": cond, "request": i,
                                  "speech_s": round(b - a, 2), "length_s": round(audio.size / RATE, 2),
                                  "sha256": hashlib.sha256((out / name).read_bytes()).hexdigest()[:16]})
    finally:
        if piper is not None:
            piper.close()
    manifest = {"spec": spec, "built": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "rate": RATE,
                "build_s": round(time.monotonic() - started, 1), "files": files}
    path.write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    if echo:
        echo(f"accuracy set: {len(files)} files in {out} ({manifest['build_s']} s)", file=sys.stderr)
    return manifest


def load_audio(out: Path, item: dict) -> np.ndarray:
    import soundfile as sf

    audio, rate = sf.read(Path(out) / item["file"], dtype="float32")
    assert rate == RATE
    return audio
