"""voiced.engines.hallucination: Whisper's stock output on non-speech is rejected, real
requests are kept."""
import pytest

from voiced.engines.hallucination import is_hallucination, normalise, rejection_reason


@pytest.mark.parametrize("text, reason_part", [
    ("", "empty"),
    ("   ", "empty"),
    (" you", "typical"),
    ("Thank you.", "typical"),
    ("THANK YOU!!", "typical"),
    (" Thank you very much.", "typical"),
    ("Thanks for watching!", "typical"),
    ("Thank you for watching, and see you next time!", "typical"),
    ("Please subscribe.", "typical"),
    ("Bye.", "typical"),
    ("Don't forget to like and subscribe!", "typical"),
    ("Subtitles by the Amara.org community", "credits"),
    ("Transcribed by ESO, translated by —", "credits"),
    ("...", "punctuation"),
    (" . . . . .", "punctuation"),
    ("- - -", "punctuation"),
    ("[BLANK_AUDIO]", "annotation"),
    (" (music)", "annotation"),
    ("[Music] [Applause]", "annotation"),
    ("*coughs*", "annotation"),
    ("♪♪", "music"),
    ("♪ la la la ♪", "annotation"),
    ("♪", "music"),
    ("the the the the the the the", "loop"),
    ("I'm going to I'm going to I'm going to I'm going to", "loop"),
    ("Okay. Okay. Okay. Okay. Okay.", "loop"),
    ("so so so " * 8 + "and then so so", "loop"),
])
def test_rejected(text, reason_part):
    reason = rejection_reason(text)
    assert reason is not None and reason_part in reason, (text, reason)
    assert is_hallucination(text)


@pytest.mark.parametrize("text", [
    "Turn on the kitchen lights.",
    "Thank you for the reminder, set it for five.",
    "What time is it? Thank you.",
    "You are late.",
    "No, no, no.",
    "Play Yesterday (the Beatles song).",
    "Open google dot com",
    "Set a timer for ten minutes and then another timer for ten minutes.",
    ("And so my fellow Americans, ask not what your country can do for you, "
     "ask what you can do for your country."),
    "Mañana a las ocho, por favor.",
])
def test_kept(text):
    assert rejection_reason(text) is None
    assert not is_hallucination(text)


def test_normalise_ignores_case_punctuation_and_apostrophes():
    assert normalise("  Don’t STOP — now!! ") == "dont stop now"
    assert normalise("Thank-you.") == normalise("thank you")
