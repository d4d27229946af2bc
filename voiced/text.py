"""Pure text helpers for speech output: sentence splitting and speakable normalisation.

`split_sentences(text)` cuts a reply into sentences (and over-long sentences at clause
breaks) so TTS can start speaking the first one early and never gets a paragraph at once.
`SentenceSplitter` does the same incrementally for streamed text: `feed()` returns the
sentences completed so far, `flush()` the tail; for any chunking of the input the result
equals `split_sentences` of the whole (a test checks this).
`speakable(text)` turns chat-style text (markdown, emoji, URLs) into something a TTS
engine can read aloud.
"""
from __future__ import annotations

import re
from collections.abc import Iterable

DEFAULT_MAX_CHARS = 200    # ~12 s of speech: long enough for prosody, short enough for TTS

# Lower-case, without the final dot. A dot after one of these does not end a sentence.
# Ordinary words ("no", "sun", "am") are left out: "I said no. Then..." must split. Those
# and "etc." / "a.m." still stay joined before a lower-case word (see _is_boundary).
ABBREVIATIONS = frozenset((
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "ft", "vs", "e.g", "i.e",
    "cf", "approx", "appt", "dept", "figs", "vol", "vols", "inc", "ltd", "corp", "lt",
    "sgt", "capt", "blvd", "rd", "u.s", "u.k", "u.n", "e.u", "ph.d", "jan", "feb", "apr",
    "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "mon", "tue", "tues", "thu",
    "thur", "thurs", "fri",
))

_TERMINAL = ".!?…"
_CLOSERS = "\"')]}”’»"
# Sentence-ending punctuation, optional closing quotes/brackets, then whitespace or the end.
_CANDIDATE = re.compile(rf"[{_TERMINAL}]+[{re.escape(_CLOSERS)}]*(?=\s|$)")
_WORD_BEFORE = re.compile(r"([A-Za-z][A-Za-z.]*)\.$")
# Clause breaks for over-long sentences: , ; : followed by a space (so "3,500" and "10:30"
# are never cut), or a spaced dash.
_CLAUSE = re.compile(r"[,;:](?=\s)|\s[-–—](?=\s)")


_NEXT_TOKEN = re.compile(r"\s+(\S+)(\s|$)")


def _is_boundary(text: str, start: int, end: int, final: bool) -> bool | None:
    """Does the candidate text[start:end] end a sentence? None = cannot tell yet.

    The decision needs the next whole word, so a streamed "Dr." or "J." waits for it;
    at the end of the text (final) whatever is there decides.
    """
    nxt = _NEXT_TOKEN.match(text, end)
    if nxt is None or (nxt.group(2) == "" and not final):
        return True if final and not text[end:].strip() else None
    word = nxt.group(1)
    mark = text[start:end]
    if mark[-1] in ".…" and word[0].islower():      # "e.g. the", "approx. ten", "etc. and"
        return False
    if mark == ".":
        before = _WORD_BEFORE.search(text, 0, end)
        if before and before.group(1).lower() in ABBREVIATIONS:
            return False
        if _is_initial(text, end, word):
            return False
    return True


def _is_initial(text: str, end: int, next_word: str) -> bool:
    """'J.' in 'J. R. R. Tolkien': a lone capital, beside another lone capital."""
    if not re.search(r"(?:^|\s)[A-Z]\.$", text[:end]):
        return False
    prev_initial = re.search(r"(?:^|\s)[A-Z]\.\s+[A-Z]\.$", text[:end]) is not None
    return prev_initial or re.fullmatch(r"[A-Z]\.", next_word) is not None


def _clause_cut(sentence: str, max_chars: int) -> int:
    """Where to cut a sentence longer than max_chars: the last clause break, else a space."""
    floor = max_chars // 3                # avoid a tiny first piece
    cuts = [m.end() for m in _CLAUSE.finditer(sentence, 0, max_chars + 1)
            if floor <= m.end() <= max_chars]
    if cuts:
        return cuts[-1]
    space = sentence.rfind(" ", floor, max_chars + 1)
    return space if space > 0 else max_chars


class SentenceSplitter:
    """Incremental sentence splitter: feed text pieces, get completed sentences."""

    def __init__(self, max_chars: int = DEFAULT_MAX_CHARS):
        if max_chars < 20:
            raise ValueError("max_chars must be at least 20")
        self.max_chars = max_chars
        self._buf = ""

    def feed(self, piece: str) -> list[str]:
        self._buf += piece
        return self._drain(final=False)

    def flush(self) -> list[str]:
        """Return whatever is left as the last sentence(s) and reset."""
        out = self._drain(final=True)
        self._buf = ""
        return out

    def _drain(self, final: bool) -> list[str]:
        out: list[str] = []
        while True:
            buf = self._buf.lstrip()
            self._buf = buf
            if not buf:
                return out
            end, pending = self._first_end(buf, final)
            if end is not None and end <= self.max_chars:
                out.append(buf[:end].strip())
                self._buf = buf[end:]
                continue
            # Either no end yet, or the sentence runs past max_chars: cut it at a clause
            # once we know it is long (decided from its first max_chars+1 chars only).
            known_long = (end is not None and end > self.max_chars) or \
                         (pending is not None and pending > self.max_chars) or \
                         (pending is None and len(buf.rstrip()) > self.max_chars)
            if known_long:
                cut = _clause_cut(buf, self.max_chars)
                out.append(buf[:cut].strip())
                self._buf = buf[cut:]
                continue
            if final:
                out.append(buf.strip())
                self._buf = ""
            return out

    @staticmethod
    def _first_end(buf: str, final: bool) -> tuple[int | None, int | None]:
        """(end of the first confirmed sentence, end of an undecided candidate)."""
        newline = buf.find("\n")
        limit = newline if newline >= 0 else len(buf)
        for m in _CANDIDATE.finditer(buf, 0, len(buf)):
            if m.start() >= limit:
                break
            verdict = _is_boundary(buf, m.start(), m.end(), final)
            if verdict is None:
                return (m.end(), None) if final else (None, m.end())
            if verdict:
                return m.end(), None
        if newline >= 0:
            return newline, None
        return (len(buf.rstrip()), None) if final else (None, None)


def split_sentences(text: str, max_chars: int = DEFAULT_MAX_CHARS) -> list[str]:
    """Split a whole text into sentences, none longer than max_chars."""
    splitter = SentenceSplitter(max_chars)
    return [s for s in splitter.feed(text) + splitter.flush() if _has_words(s)]


def iter_sentences(pieces: Iterable[str], max_chars: int = DEFAULT_MAX_CHARS):
    """Sentences from a stream of text pieces (e.g. an LLM's tokens), as soon as complete."""
    splitter = SentenceSplitter(max_chars)
    for piece in pieces:
        yield from (s for s in splitter.feed(piece) if _has_words(s))
    yield from (s for s in splitter.flush() if _has_words(s))


def _has_words(sentence: str) -> bool:
    return any(ch.isalnum() for ch in sentence)


# ---- speakable text -------------------------------------------------------------------

_EMOJI = re.compile(
    "[\U0001F000-\U0001FAFF\U00002600-\U000027BF\U00002B00-\U00002BFF\U0001F1E6-\U0001F1FF"
    "\U0000FE00-\U0000FE0F\U0000200D\U000020E3\U000E0020-\U000E007F\U00002190-\U000021FF"
    "\U00002300-\U000023FF]+")
_FENCE = re.compile(r"```.*?(```|\Z)", re.DOTALL)
_HTML = re.compile(r"</?[A-Za-z][^<>]*>")
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_URL = re.compile(r"\b(?:https?://|www\.)[^\s<>()\[\]]+", re.IGNORECASE)
_BOLD = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_ITALIC = re.compile(r"(?<![\w*])([*_])(?=\S)(.+?)(?<=\S)\1(?![\w*])")
_STRIKE = re.compile(r"~~(.+?)~~")
_CODE = re.compile(r"`([^`]*)`")
_LINE_MARKUP = re.compile(r"^\s*(?:#{1,6}\s+|>\s?|[-*+•]\s+|\d{1,3}[.)]\s+(?=\S))")
_RULE = re.compile(r"^\s*(?:[-*_=]\s*){3,}$|^\s*\|?\s*:?-{3,}")
_SYMBOLS = (("&", " and "), (" -> ", " to "), (" => ", " to "), ("→", " to "), ("|", ", "))


def _url_words(m: re.Match) -> str:
    url = m.group()
    tail = ""
    while url and url[-1] in ".,;:!?'\"":
        url, tail = url[:-1], url[-1] + tail
    host = re.sub(r"^(?:https?://)?(?:www\.)?", "", url, flags=re.IGNORECASE).split("/")[0]
    return host.split("@")[-1].split(":")[0] + tail


def speakable(text: str) -> str:
    """Markdown, emoji, URLs and HTML turned into plain speakable text.

    Line structure is kept (a list item or heading stays on its own line, ending with a
    full stop if it had no punctuation) so the sentence splitter treats it as a sentence.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _FENCE.sub(" ", text)           # code is not read aloud
    text = _HTML.sub(" ", text)
    text = _IMAGE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = _URL.sub(_url_words, text)      # "https://www.example.com/a/b" -> "example.com"
    text = _CODE.sub(r"\1", text)
    text = _STRIKE.sub(r"\1", text)
    for _ in range(2):                     # nested emphasis: ***both***
        text = _BOLD.sub(r"\2", text)
        text = _ITALIC.sub(r"\2", text)
    text = _EMOJI.sub(" ", text)
    lines = []
    for line in text.split("\n"):
        if _RULE.match(line):
            continue
        line = _LINE_MARKUP.sub("", line)
        line = re.sub(r"(?<=\d)\s*[*×]\s*(?=\d)", " times ", line)
        line = line.replace("*", " ")     # stray emphasis markers
        for old, new in _SYMBOLS:
            line = line.replace(old, new)
        line = re.sub(r"\s+([,.!?;:])", r"\1", " ".join(line.split())).strip(" ,")
        if not _has_words(line):
            continue
        if line[-1] not in _TERMINAL + _CLOSERS + ",;:":
            line += "."
        lines.append(line)
    return "\n".join(lines)
