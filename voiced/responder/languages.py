"""What the builtin responder understands and says in German, French and Spanish (English is
in builtin.py): the time, the date, a greeting and the echo. Another language is answered in
English, and the openai responder is told the language instead."""
from __future__ import annotations

import datetime as dt
import re

NAMES = {"en": "English", "de": "German", "fr": "French", "es": "Spanish", "it": "Italian", "nl": "Dutch",
         "pt": "Portuguese", "pl": "Polish", "sv": "Swedish", "da": "Danish", "fi": "Finnish", "no": "Norwegian"}


def language_name(code: str) -> str:
    return NAMES.get(code, code)


RULES: dict[str, list[tuple[re.Pattern, str]]] = {
    "de": [(re.compile(r"\b(wie sp[äa]t|wie viel uhr|wieviel uhr|uhrzeit)\b"), "time"),
           (re.compile(r"\b(welcher tag|welches datum|datum|den wievielten)\b"), "date"),
           (re.compile(r"^\s*(hallo|guten (tag|morgen|abend))\b"), "hello")],
    "fr": [(re.compile(r"\b(quelle heure|l'heure|l heure)\b"), "time"),
           (re.compile(r"\b(quel jour|quelle date|la date)\b"), "date"),
           (re.compile(r"^\s*(bonjour|salut|bonsoir)\b"), "hello")],
    "es": [(re.compile(r"\b(qu[ée] hora|la hora)\b"), "time"),
           (re.compile(r"\b(qu[ée] d[íi]a|qu[ée] fecha|la fecha)\b"), "date"),
           (re.compile(r"^\s*(hola|buenos d[íi]as|buenas (tardes|noches))\b"), "hello")],
}
_DAYS = {"de": "Montag Dienstag Mittwoch Donnerstag Freitag Samstag Sonntag",
         "fr": "lundi mardi mercredi jeudi vendredi samedi dimanche",
         "es": "lunes martes miércoles jueves viernes sábado domingo"}
_MONTHS = {"de": "Januar Februar März April Mai Juni Juli August September Oktober November Dezember",
           "fr": "janvier février mars avril mai juin juillet août septembre octobre novembre décembre",
           "es": "enero febrero marzo abril mayo junio julio agosto septiembre octubre noviembre diciembre"}


def intent(language: str, words: str) -> str | None:
    return next((name for pattern, name in RULES.get(language, ()) if pattern.search(words)), None)


def answer(language: str, intent_name: str, transcript: str, now: dt.datetime) -> str | None:
    """The reply in `language`, or None when this module does not speak it."""
    if language not in RULES:
        return None
    day, month = _DAYS[language].split()[now.weekday()], _MONTHS[language].split()[now.month - 1]
    if intent_name == "time":
        return {"de": f"Es ist {now.hour}:{now.minute:02d} Uhr.", "fr": f"Il est {now.hour} h {now.minute:02d}.",
                "es": f"Son las {now.hour}:{now.minute:02d}."}[language]
    if intent_name == "date":
        return {"de": f"Heute ist {day}, der {now.day}. {month} {now.year}.",
                "fr": f"Nous sommes le {day} {now.day} {month} {now.year}.",
                "es": f"Hoy es {day}, {now.day} de {month} de {now.year}."}[language]
    if intent_name == "hello":
        return {"de": "Hallo! Wie kann ich helfen?", "fr": "Bonjour ! Comment puis-je vous aider ?",
                "es": "¡Hola! ¿En qué puedo ayudar?"}[language]
    return {"de": f"Du hast gesagt: {transcript.strip()}", "fr": f"Vous avez dit : {transcript.strip()}",
            "es": f"Has dicho: {transcript.strip()}"}[language]
