"""The robot's persona: the write-up's three instruction files, joined into a system prompt."""

from dataclasses import dataclass
from pathlib import Path

from kidscare_llm.core.errors import PersonaError

FILES = ('base.txt', 'few_shot.txt', 'informations.txt')


@dataclass(frozen=True)
class Persona:
    """Who the robot is (base), how it talks (few_shot) and what it knows (informations)."""

    base: str
    few_shot: str
    informations: str
    source: str = ''

    def system_prompt(self, inline_informations: bool = True) -> str:
        """Join the parts in a fixed order so the prompt prefix stays the same turn after turn."""
        parts = [self.base, self.few_shot]
        if inline_informations:
            parts.append(self.informations)
        return '\n\n'.join(p for p in parts if p)


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


def load_persona(folder: Path) -> Persona:
    """Load base.txt, few_shot.txt and informations.txt (UTF-8, with or without BOM)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PersonaError(f'persona folder not found: {folder}')
    base, few_shot, informations = (_read(folder / name) for name in FILES)
    if not base:
        raise PersonaError(f'persona file {folder / FILES[0]} is empty: it says who the robot is')
    return Persona(base, few_shot, informations, str(folder))
