"""Named voices: a reference clip, its cached Chatterbox conditionals and default controls."""
from .store import Voice, VoiceError, VoiceStore, open_store

__all__ = ["Voice", "VoiceError", "VoiceStore", "open_store"]
