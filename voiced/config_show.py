"""`voiced config show`: the effective settings, each with where its value came from;
`voiced config check FILE`: validate a file as `voiced run` would load it.

Precedence is load_settings()'s: VOICED_<SECTION>__<KEY> (or a whole section as JSON in
VOICED_<SECTION>) over the config file over the built-in default. The shipped default file
(voiced/default_config/voiced.toml) counts as "default".
"""
from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from pydantic import AliasChoices

from .config import SHIPPED_DEFAULT, ConfigError, Settings, load_settings

SECRETS = {("web", "token"), ("responder", "openai_api_key"), ("homeassistant", "encryption_key")}
MASK = "********"


@dataclass
class Entry:
    section: str
    key: str
    value: object
    source: str          # "default", "file" or "env"
    origin: str | None   # the file, or the environment variable


def _names(field_name: str, info) -> list[str]:
    """The field's name and its aliases (watchdog.frame_deadline_s for loop_deadline_s)."""
    names = [field_name]
    alias = info.validation_alias
    if isinstance(alias, AliasChoices):
        names += [c for c in alias.choices if isinstance(c, str) and c not in names]
    elif isinstance(alias, str) and alias not in names:
        names.append(alias)
    return names


def _env_lookup() -> dict[str, str]:
    """Upper-cased VOICED_* names -> the name as set (pydantic-settings matches case-insensitively)."""
    return {k.upper(): k for k in os.environ if k.upper().startswith("VOICED_")}


def entries(settings: Settings, path: Path) -> list[Entry]:
    try:
        with open(path, "rb") as fh:
            file_data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError):
        file_data = {}
    from_shipped = Path(path).resolve() == SHIPPED_DEFAULT.resolve()
    env = _env_lookup()
    out = []
    for section, section_info in Settings.model_fields.items():
        model = getattr(settings, section)
        file_section = file_data.get(section, {}) if isinstance(file_data.get(section), dict) else {}
        section_var = env.get(f"VOICED_{section.upper()}")
        try:
            section_json = json.loads(os.environ[section_var]) if section_var else {}
        except ValueError:
            section_json = {}
        for key, info in type(model).model_fields.items():
            names = _names(key, info)
            source, origin = "default", None
            if not from_shipped and any(n in file_section for n in names):
                source, origin = "file", str(path)
            if isinstance(section_json, dict) and any(n in section_json for n in names):
                source, origin = "env", section_var
            for n in names:
                var = env.get(f"VOICED_{section.upper()}__{n.upper()}")
                if var:
                    source, origin = "env", var
                    break
            value = getattr(model, key)
            if (section, key) in SECRETS and value:
                value = MASK
            out.append(Entry(section, key, value, source, origin))
    return out


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)


def _comment(e: Entry) -> str:
    return "default" if e.source == "default" else f"from {e.source} {e.origin}"


def show(explicit: str | None, as_json: bool = False) -> str:
    settings, path = load_settings(explicit)
    rows = entries(settings, path)
    if as_json:
        tree: dict = {}
        for e in rows:
            value = list(e.value) if isinstance(e.value, tuple) else e.value
            tree.setdefault(e.section, {})[e.key] = {"value": value, "source": e.source, "from": e.origin}
        return json.dumps({"config_file": str(path), "shipped_default": path == SHIPPED_DEFAULT,
                           "settings": tree}, indent=2) + "\n"
    lines = [f"# effective settings of voiced: file {path}"
             f"{' (the shipped default)' if path == SHIPPED_DEFAULT else ''}, then VOICED_* environment variables",
             f"# secrets are shown as \"{MASK}\""]
    section = None
    texts = [(e, f"{e.key} = {toml_value(e.value)}") for e in rows]
    for e, text in texts:
        if e.section != section:
            section = e.section
            width = min(max(len(t) for x, t in texts if x.section == section), 60)
            lines += ["", f"[{section}]"]
        lines.append(f"{text:<{width}}  # {_comment(e)}")
    return "\n".join(lines) + "\n"


def check(file: str) -> str:
    """The line to print when FILE (with the VOICED_* environment) is a valid config; raises
    ConfigError (naming the key and the file or variable) otherwise."""
    path = Path(file).expanduser()
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    _settings, path = load_settings(path)
    return f"{path}: ok"
