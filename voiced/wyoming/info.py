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


def describe(stt_info, tts_info, wake_names, stt_language: str) -> Info:
    """Info for the engines' EngineInfo (None: not offered) and the wake word names."""
    info = Info()
    if stt_info is not None:
        info.asr.append(AsrProgram(
            name="voiced-whisper", description=f"voiced: Whisper speech-to-text on {stt_info.device}",
            attribution=VOICED, installed=True, version=__version__,
            models=[AsrModel(name=stt_info.model, description=f"Whisper ({stt_info.model})", attribution=WHISPER,
                             installed=True, version=None, languages=[language_of(stt_language)])]))
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
