"""The answer to Describe: what this voiced offers (models, languages, voices, wake words),
built from the engines as they are now (a GPU fault may have changed them)."""
from __future__ import annotations

from wyoming.info import (
    AsrModel,
    AsrProgram,
    Attribution,
    Info,
    TtsProgram,
    TtsVoice,
    WakeModel,
    WakeProgram,
)

from .. import __version__

VOICED = Attribution(name="voiced", url="")   # no public home page yet
WHISPER = Attribution(name="OpenAI Whisper", url="https://github.com/openai/whisper")
OPENWAKEWORD = Attribution(name="openWakeWord (dscripka)", url="https://github.com/dscripka/openWakeWord")
TTS_ATTRIBUTION = {
    "chatterbox": Attribution(name="Resemble AI Chatterbox", url="https://github.com/resemble-ai/chatterbox"),
    "piper": Attribution(name="Piper (rhasspy)", url="https://github.com/rhasspy/piper"),
    "espeak": Attribution(name="eSpeak NG", url="https://github.com/espeak-ng/espeak-ng"),
}


def language_of(code: str) -> str:
    """"en-us" -> "en"; "" (auto) -> "en", Whisper's and the voices' first language."""
    return (code or "en").split("-")[0].split("_")[0].lower() or "en"


def stt_languages(language, engine=None) -> list[str]:
    """The languages the speech-to-text truly offers for [stt] language: the forced one ("en"),
    the list detection chooses from (["en", "de"]), or, with "auto", every language of the
    loaded model (`engine.languages`: Whisper's ~99 for a multilingual model, ["en"] for an
    English-only one)."""
    codes = [language] if isinstance(language, str) else list(language)
    chosen = [language_of(c) for c in codes if c.strip() and c.strip().lower() != "auto"]
    if chosen:
        return list(dict.fromkeys(chosen))
    offered = getattr(engine, "languages", None) if engine is not None else None
    return list(offered) if offered else ["en"]


def describe(stt_info, tts_info, wake_names, stt_language) -> Info:
    """Info for the engines' EngineInfo (None: not offered) and the wake word names.
    `stt_language`: a code, or the list of codes (stt_languages()) the ASR model offers."""
    info = Info()
    asr_languages = [language_of(stt_language)] if isinstance(stt_language, str) else list(stt_language)
    if stt_info is not None:
        info.asr.append(AsrProgram(
            name="voiced-whisper", description=f"voiced: Whisper speech-to-text on {stt_info.device}",
            attribution=VOICED, installed=True, version=__version__,
            models=[AsrModel(name=stt_info.model, description=f"Whisper ({stt_info.model})", attribution=WHISPER,
                             installed=True, version=None, languages=asr_languages)]))
    if tts_info is not None:
        info.tts.append(TtsProgram(
            name="voiced-tts", description=f"voiced: {tts_info.name} text-to-speech on {tts_info.device}",
            attribution=VOICED, installed=True, version=__version__, supports_synthesize_streaming=True,
            voices=[TtsVoice(name=tts_info.name, description=f"{tts_info.name} ({tts_info.model})",
                             attribution=TTS_ATTRIBUTION.get(tts_info.name, VOICED), installed=True, version=None,
                             languages=["en"])]))
    if wake_names:
        info.wake.append(WakeProgram(
            name="voiced-openwakeword", description="voiced: openWakeWord wake word detection",
            attribution=VOICED, installed=True, version=__version__,
            models=[WakeModel(name=name, description=name.replace("_", " "), phrase=name.replace("_", " "),
                              attribution=OPENWAKEWORD, installed=True, version=None, languages=["en"])
                    for name in wake_names]))
    return info
