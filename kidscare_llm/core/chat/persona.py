"""The robot's persona: the write-up's three instruction files, joined into a system prompt.

A persona folder may also hold lines.yaml: what the robot says without the model (busy, too
long, error) and the fixed texts the engine writes, per language; missing keys come from the
packaged file, so a robot for another child or in English changes files, never code.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Mapping

from kidscare_llm.core import paths
from kidscare_llm.core.errors import PersonaError

FILES = ('base.txt', 'few_shot.txt', 'informations.txt')
LINES_FILE = 'lines.yaml'
LINE_KEYS = ('too_long', 'error', 'busy', 'empty', 'informations_title', 'summary_header',
             'summary_instruction')


@dataclass(frozen=True)
class Persona:
    """Who the robot is (base), how it talks (few_shot), what it knows, and its fixed lines."""

    base: str
    few_shot: str
    informations: str
    source: str = ''
    lines: Mapping[str, str] = field(default_factory=dict)
    language: str = 'ko'

    def system_prompt(self, inline_informations: bool = False) -> str:
        """Join the parts in a fixed order so the prompt prefix stays the same turn after turn."""
        parts = [self.base, self.few_shot]
        if inline_informations:
            parts.append(self.informations)
        return '\n\n'.join(p for p in parts if p)

    def line(self, key: str) -> str:
        """Return one of the persona's fixed lines (LINE_KEYS)."""
        return self.lines[key]


def _read(path: Path) -> str:
    try:
        return path.read_bytes().decode('utf-8-sig').replace('\r\n', '\n').strip()
    except FileNotFoundError:
        raise PersonaError(f'persona file missing: {path} (a persona folder holds '
                           + ', '.join(FILES) + ')') from None
    except UnicodeDecodeError as exc:
        raise PersonaError(f'persona file {path} is not UTF-8 (byte {exc.start}): '
                           're-save it as UTF-8') from None
    except OSError as exc:
        raise PersonaError(f'cannot read persona file {path}: {exc.strerror}') from None


def _read_lines(path: Path) -> dict:
    import yaml

    try:
        doc = yaml.safe_load(_read(path)) or {}
    except yaml.YAMLError as exc:
        raise PersonaError(f'persona file {path} is not valid YAML: {exc}') from None
    if not isinstance(doc, dict):
        raise PersonaError(f'persona file {path}: expected a mapping of languages to lines')
    return doc


def _lines(folder: Path) -> tuple:
    """Return (language, {key: line}) from folder/lines.yaml over the packaged defaults."""
    packaged = _read_lines(paths.default_persona_dir() / LINES_FILE)
    own_path = folder / LINES_FILE
    own = _read_lines(own_path) if own_path.is_file() else {}
    language = str(own.get('language', packaged.get('language', 'ko')))
    if not isinstance(packaged.get(language, {}), dict) \
            or not isinstance(own.get(language, {}), dict):
        raise PersonaError(f'{own_path}: the {language} section must map keys to lines')
    lines: Dict[str, str] = {**packaged.get(language, {}), **own.get(language, {})}
    missing = [k for k in LINE_KEYS if not str(lines.get(k, '')).strip()]
    if missing:
        raise PersonaError(f'{own_path}: no {language} line for ' + ', '.join(missing)
                           + f' (and none packaged for language {language!r})')
    unknown = sorted(set(lines) - set(LINE_KEYS))
    if unknown:
        raise PersonaError(f'{own_path}: unknown line(s) ' + ', '.join(unknown)
                           + '; known: ' + ', '.join(LINE_KEYS))
    return language, {k: str(v).strip() for k, v in lines.items()}


def load_persona(folder: Path) -> Persona:
    """Load base.txt, few_shot.txt, informations.txt (UTF-8, BOM or not) and lines.yaml."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PersonaError(f'persona folder not found: {folder}')
    base, few_shot, informations = (_read(folder / name) for name in FILES)
    if not base:
        raise PersonaError(f'persona file {folder / FILES[0]} is empty: it says who the robot is')
    language, lines = _lines(folder)
    return Persona(base, few_shot, informations, str(folder), lines, language)


def packaged_persona() -> Persona:
    """Return the packaged kids-care persona (토리, who looks after 라이언)."""
    return load_persona(paths.default_persona_dir())
