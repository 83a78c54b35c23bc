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
    prompt = persona.system_prompt(inline_informations=True)
    assert '라이언' in persona.informations and '라이언' in prompt
    assert prompt.index(persona.base) < prompt.index(persona.few_shot) < \
        prompt.index(persona.informations)
    # persona.inline_informations defaults to false: the facts come from retrieval instead
    assert persona.informations not in persona.system_prompt()


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


def test_fixed_lines_come_from_the_persona_folder(tmp_path):
    """lines.yaml: a robot in English, or for another child, needs no code change."""
    packaged = load_persona(paths.default_persona_dir())
    assert packaged.language == 'ko' and '길어서' in packaged.line('too_long')
    folder = write_persona(tmp_path / 'en', base='You are Tori, a kind robot.')
    (folder / 'lines.yaml').write_text('language: en\nen:\n  busy: Hold on, Mia!\n',
                                       encoding='utf-8')
    english = load_persona(folder)
    assert english.line('busy') == 'Hold on, Mia!'  # its own line
    assert english.line('too_long').startswith('That was a lot')  # the packaged English one
    assert english.line('informations_title') == 'About the child'


@pytest.mark.parametrize('text, message', [
    ('language: ko\nko:\n  hello: hi\n', 'unknown line'),
    ('language: fr\n', 'no fr line for too_long'),
    ('- a list\n', 'expected a mapping'),
    ('language: ko\nko: [1, 2]\n', 'must map keys to lines'),
])
def test_bad_lines_file_is_refused_with_its_name(tmp_path, text, message):
    folder = write_persona(tmp_path / 'p')
    (folder / 'lines.yaml').write_text(text, encoding='utf-8')
    with pytest.raises(PersonaError, match=message):
        load_persona(folder)


def test_engine_speaks_the_persona_lines(tmp_path, real_backend):
    """The engine's canned answer is the persona's line, in the persona's language."""
    from kidscare_llm.core import settings
    from kidscare_llm.core.build import build_engine

    folder = write_persona(tmp_path / 'en', base='You are Tori, a kind robot.')
    (folder / 'lines.yaml').write_text('language: en\n', encoding='utf-8')
    params = settings.load('chat_node', overrides={
        'persona.dir': str(folder), 'rag.enabled': False, 'safety.enabled': False,
        'chat.max_utterance_chars': 10, 'data_dir': str(tmp_path / 'data')})
    engine = build_engine(params, backend=real_backend)
    try:
        reply = engine.reply('mia', 'This is far more than ten characters.')
        assert reply.kind == 'refused' and reply.text == engine.persona.line('too_long')
        assert reply.text.startswith('That was a lot')
    finally:
        engine.store.close()
