"""The persona as a caregiver edits it: view, preview the prompt size, save a copy, reset.

An edit never touches the packaged files or persona.dir: the three texts are written to
<data dir>/persona/ (with the lines.yaml of the folder they replace, and origin.txt naming
that folder), which the chat node then loads at every start (core/build.py). The running
engine switches at once: its system prompt and budget are recomputed, every KV snapshot is
dropped (they hold the old persona) and the persona's informations are indexed again.
"""

import os
from pathlib import Path
import shutil
from typing import Optional

from kidscare_llm.core import paths
from kidscare_llm.core.chat.persona import FILES, LINES_FILE, load_persona, Persona
from kidscare_llm.core.chat.prompt import MESSAGE_OVERHEAD
from kidscare_llm.core.errors import KidscareError

FIELDS = tuple(name[:-len('.txt')] for name in FILES)  # base, few_shot, informations
MAX_CHARS = 20000  # per text: a persona is a page or two, not a book
EDITED = 'persona'  # under the data dir
ORIGIN = 'origin.txt'
INFORMATIONS_SOURCE = 'persona:informations.txt'


class PersonaEditError(KidscareError):
    """An edited persona is empty, too long, or too large for the model's context."""


def edited_dir(data_dir: Path) -> Path:
    """Return the folder of the caregiver's edited persona (used at start-up when present)."""
    return Path(data_dir) / EDITED


def has_edit(data_dir: Optional[Path]) -> bool:
    """Say whether a caregiver saved an edited persona under the data dir."""
    return data_dir is not None and (edited_dir(data_dir) / FILES[0]).is_file()


def validate(texts: dict) -> dict:
    """Return the three texts cleaned (newlines, outer space), or raise PersonaEditError."""
    clean = {}
    for name in FIELDS:
        value = texts.get(name)
        if not isinstance(value, str):
            raise PersonaEditError(f'{name}: missing')
        value = value.replace('\r\n', '\n').replace('\x00', '').strip()
        if len(value) > MAX_CHARS:
            raise PersonaEditError(f'{name}: {len(value)} characters, over {MAX_CHARS}')
        clean[name] = value
    for name in ('base', 'few_shot'):
        if not clean[name]:
            raise PersonaEditError(f'{name}: empty (it says who the robot is and how it talks)')
    return clean


class PersonaDesk:
    """View, preview, save and reset the persona of a running engine."""

    def __init__(self, engine, data_dir: Optional[Path]):
        self.engine = engine
        self.data_dir = Path(data_dir) if data_dir else None

    def _inline(self) -> bool:
        return bool(getattr(self.engine.options, 'inline_informations', False))

    def size(self, persona: Persona) -> dict:
        """Return the system prompt's tokens and the most the engine accepts (half its budget)."""
        backend = self.engine.backend
        tokens = backend.count_tokens(persona.system_prompt(self._inline())) + MESSAGE_OVERHEAD
        budget = backend.n_ctx - self.engine.options.sampling.max_tokens
        return {'tokens': tokens, 'limit': budget // 2, 'fits': tokens <= budget // 2}

    def get(self) -> dict:
        """Return the three texts, where they come from, and the prompt size."""
        persona = self.engine.persona
        return {**{name: getattr(persona, name) for name in FIELDS}, 'source': persona.source,
                'edited': has_edit(self.data_dir), 'max_chars': MAX_CHARS,
                **self.size(persona)}

    def preview(self, **texts) -> dict:
        """Return the prompt size the texts would make, without saving anything."""
        clean = validate(texts)
        persona = Persona(clean['base'], clean['few_shot'], clean['informations'], '',
                          self.engine.persona.lines, self.engine.persona.language)
        return self.size(persona)

    def save(self, **texts) -> dict:
        """Write the texts to <data dir>/persona/ and switch the running engine to them."""
        if self.data_dir is None:
            raise PersonaEditError('this chat node has no data dir to keep an edited persona')
        clean = validate(texts)
        current = Path(self.engine.persona.source or paths.default_persona_dir())
        folder = edited_dir(self.data_dir)
        if self.preview(**clean)['fits'] is False:
            raise PersonaEditError('the persona is too long for the model: ' + _size_line(
                self.preview(**clean)))
        folder.mkdir(parents=True, exist_ok=True)
        if current.resolve() != folder.resolve():
            lines = current / LINES_FILE
            if lines.is_file():
                shutil.copyfile(lines, folder / LINES_FILE)
            _write(folder / ORIGIN, str(current))
        for name in FIELDS:
            _write(folder / f'{name}.txt', clean[name] + '\n')
        return self._switch(load_persona(folder))

    def reset(self) -> dict:
        """Drop the edited copy and switch back to the folder it was made from."""
        origin = paths.default_persona_dir()
        if self.data_dir is not None and has_edit(self.data_dir):
            folder = edited_dir(self.data_dir)
            try:
                named = Path((folder / ORIGIN).read_text(encoding='utf-8').strip())
                origin = named if (named / FILES[0]).is_file() else origin
            except OSError:
                pass
            shutil.rmtree(folder)
        return self._switch(load_persona(origin))

    def _switch(self, persona: Persona) -> dict:
        """Make the engine answer with this persona from its next reply on."""
        engine = self.engine
        engine.set_persona(persona)
        kb = getattr(engine, 'knowledge', None)
        if kb is not None and INFORMATIONS_SOURCE in kb.sources():
            if persona.informations:
                kb.add_text(INFORMATIONS_SOURCE, persona.line('informations_title'),
                            persona.informations)
            else:
                kb.remove([INFORMATIONS_SOURCE])
        return self.get()


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + '.tmp')
    tmp.write_text(text, encoding='utf-8')
    os.replace(tmp, path)


def _size_line(size: dict) -> str:
    return f"{size['tokens']} tokens, over the {size['limit']} this model allows"
