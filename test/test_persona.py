"""Persona files: the write-up's layout, UTF-8 with or without BOM, clear errors."""

import pytest

from kidscare_llm.core import paths
from kidscare_llm.core.chat.persona import load_persona
from kidscare_llm.core.errors import PersonaError


def write_persona(folder, base='너는 돌봄 로봇이야.', few='예시', info='라이언은 여섯 살이야.'):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / 'base.txt').write_text(base, encoding='utf-8')
    (folder / 'few_shot.txt').write_text(few, encoding='utf-8')
    (folder / 'informations.txt').write_text(info, encoding='utf-8')
    return folder


def test_packaged_persona_is_korean_and_about_lion():
    persona = load_persona(paths.default_persona_dir())
    prompt = persona.system_prompt()
    assert '라이언' in persona.informations and '라이언' in prompt
    assert prompt.index(persona.base) < prompt.index(persona.few_shot) < \
        prompt.index(persona.informations)
    assert persona.informations not in persona.system_prompt(inline_informations=False)


def test_bom_and_crlf_are_accepted(tmp_path):
    folder = write_persona(tmp_path / 'p')
    (folder / 'base.txt').write_bytes('\ufeff너는 로봇이야.\r\n둘째 줄'.encode('utf-8'))
    assert load_persona(folder).base == '너는 로봇이야.\n둘째 줄'


def test_missing_file_is_named(tmp_path):
    folder = write_persona(tmp_path / 'p')
    (folder / 'few_shot.txt').unlink()
    with pytest.raises(PersonaError, match='few_shot.txt'):
        load_persona(folder)


def test_not_utf8_is_reported(tmp_path):
    folder = write_persona(tmp_path / 'p')
    (folder / 'informations.txt').write_bytes('라이언'.encode('euc-kr'))
    with pytest.raises(PersonaError, match='informations.txt is not UTF-8'):
        load_persona(folder)


def test_empty_base_and_missing_folder(tmp_path):
    with pytest.raises(PersonaError, match='is empty'):
        load_persona(write_persona(tmp_path / 'p', base='  \n'))
    with pytest.raises(PersonaError, match='persona folder not found'):
        load_persona(tmp_path / 'nowhere')
