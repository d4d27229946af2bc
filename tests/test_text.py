"""voiced.text: sentence splitting (whole and streamed) and speakable normalisation."""
import random

import pytest

from voiced.text import SentenceSplitter, iter_sentences, speakable, split_sentences


@pytest.mark.parametrize("text, expected", [
    ("Hello there. How are you? I'm fine!", ["Hello there.", "How are you?", "I'm fine!"]),
    ("Dr. Smith came at 10:30 a.m. today. It cost 3.5 million, e.g. a lot.",
     ["Dr. Smith came at 10:30 a.m. today.", "It cost 3.5 million, e.g. a lot."]),
    ("Mr. and Mrs. Jones live on Oak St. near the park. They like it.",
     ["Mr. and Mrs. Jones live on Oak St. near the park.", "They like it."]),
    ("J. R. R. Tolkien wrote it. Then he rested.", ["J. R. R. Tolkien wrote it.", "Then he rested."]),
    ('He said "stop." Then he left.', ['He said "stop."', "Then he left."]),
    ("Pi is 3.14159. Version 2.0.1 is out!", ["Pi is 3.14159.", "Version 2.0.1 is out!"]),
    ("Apples, pears, etc. are fruit. Yes.", ["Apples, pears, etc. are fruit.", "Yes."]),
    ("First line\nSecond line\n\nThird.", ["First line", "Second line", "Third."]),
    ("No final punctuation here", ["No final punctuation here"]),
    ("Really?! Wow... That is great.", ["Really?!", "Wow...", "That is great."]),
    ("  ", []),
    ("... !!", []),
])
def test_split_sentences(text, expected):
    assert split_sentences(text) == expected


def test_long_sentence_is_cut_at_clauses_not_inside_numbers():
    text = ("This sentence keeps going, with clause after clause about 3,500 cats at 10:30, "
            "each of them fed carefully; and it carries on - without a full stop, "
            "until the model that wrote it finally runs out of things to say about it.")
    parts = split_sentences(text, max_chars=80)
    assert len(parts) >= 3
    assert all(len(p) <= 80 for p in parts)
    assert " ".join(parts) == text            # nothing lost, nothing reordered
    assert all(p[-1] in ",;-." for p in parts)  # every cut is at a clause break
    assert any("3,500" in p for p in parts) and any("10:30" in p for p in parts)


def test_long_run_without_breaks_is_hard_cut():
    text = "x" * 250
    parts = split_sentences(text, max_chars=100)
    assert [len(p) for p in parts] == [100, 100, 50]


def test_long_sentence_without_clauses_cuts_at_a_space():
    words = " ".join(f"word{i}" for i in range(60))
    parts = split_sentences(words, max_chars=100)
    assert all(len(p) <= 100 for p in parts)
    assert " ".join(parts) == words


STREAM_TEXTS = [
    "Dr. Smith came at 10:30 a.m. today. It cost 3.5 million, e.g. a lot! Did it? Yes.",
    "J. R. R. Tolkien wrote it.\n- one\n- two\nThe end, really… ok. Fine",
    'He said "stop." Then he left.   Pi is 3.14. ' + "word, " * 60 + "end.",
    "A" * 230 + ". Short one.",
]


@pytest.mark.parametrize("text", STREAM_TEXTS)
def test_streaming_equals_whole_text_for_any_chunking(text):
    whole = split_sentences(text, max_chars=120)
    for seed in range(150):
        rng = random.Random(seed)
        pieces, i = [], 0
        while i < len(text):
            n = rng.randint(1, 12)
            pieces.append(text[i:i + n])
            i += n
        assert list(iter_sentences(pieces, max_chars=120)) == whole, pieces


def test_splitter_emits_a_sentence_as_soon_as_the_next_word_confirms_it():
    s = SentenceSplitter()
    assert s.feed("Hello there") == []
    assert s.feed(". How") == []              # "How" may still be growing
    assert s.feed(" are") == ["Hello there."]
    assert s.feed(" you? I'm Dr.") == ["How are you?"]
    assert s.feed(" Who") == []               # abbreviation: "Dr." does not end it
    assert s.feed(" indeed") == []
    assert s.flush() == ["I'm Dr. Who indeed"]
    assert s.flush() == []


def test_splitter_rejects_tiny_limit():
    with pytest.raises(ValueError):
        SentenceSplitter(max_chars=5)


def test_speakable_strips_markdown_emoji_urls():
    text = ("# Results\n"
            "Here's **bold**, *italic*, `code` and snake_case_name 🎉👍🏽, see [the docs](https://x.org/a) "
            "or https://www.example.com/path?q=1.\n"
            "```python\nprint('hidden')\n```\n"
            "1. First item\n- Second item\n> quoted\n---\n"
            "Tom & Jerry <b>rock</b>: 3 * 4 = 12")
    out = speakable(text)
    assert out.split("\n") == [
        "Results.",
        "Here's bold, italic, code and snake_case_name, see the docs or example.com.",
        "First item.",
        "Second item.",
        "quoted.",
        "Tom and Jerry rock: 3 times 4 = 12.",
    ]


def test_speakable_keeps_plain_text_and_numbers():
    text = "It is 10:30 and 3.5 degrees. C# costs $4,000!"
    assert speakable(text) == text


def test_speakable_then_split_gives_one_sentence_per_list_item():
    reply = "Sure! Here are **three** options:\n\n1. Tea 🍵\n2. Coffee\n3. Water"
    assert split_sentences(speakable(reply)) == [
        "Sure!", "Here are three options:", "Tea.", "Coffee.", "Water."]


def test_speakable_drops_text_with_nothing_to_say():
    assert speakable("🎉🎉 ---\n```\ncode\n```") == ""


@pytest.mark.parametrize("text, expected", [
    ("See you at 10 a.m. Then we eat.", ["See you at 10 a.m.", "Then we eat."]),
    ("I said no. Then I left.", ["I said no.", "Then I left."]),
    ("Bring pens, paper, etc. Thanks.", ["Bring pens, paper, etc.", "Thanks."]),
    ("The sun. It is warm.", ["The sun.", "It is warm."]),
])
def test_common_words_ending_in_a_dot_still_end_sentences(text, expected):
    assert split_sentences(text) == expected
