"""Model resolution order: model.path, the cached/downloaded hub file, the packaged GGUF."""

import shutil

import pytest

from kidscare_llm.core.errors import ModelError
from kidscare_llm.core.llm.models import check_gguf, packaged_chat_model, resolve_chat_model

REPO, FILE = 'org/korean-8b-gguf', 'model-Q4_K_M.gguf'


def test_explicit_path_wins(tmp_path, packaged_gguf):
    mine = tmp_path / 'mine.gguf'
    shutil.copy(packaged_gguf, mine)
    choice = resolve_chat_model(str(mine), REPO, FILE, True, tmp_path / 'cache')
    assert choice.path == mine and choice.reason == 'model.path'


def test_missing_and_corrupt_files_say_what_to_fix(tmp_path):
    with pytest.raises(ModelError, match='model file not found'):
        resolve_chat_model(str(tmp_path / 'nope.gguf'), REPO, FILE, False, tmp_path)
    bad = tmp_path / 'bad.gguf'
    bad.write_bytes(b'<html>404</html>')
    with pytest.raises(ModelError, match='not a GGUF model'):
        check_gguf(bad)


def test_cached_hub_file_is_used_without_network(tmp_path, packaged_gguf):
    cache = tmp_path / 'cache'
    snap = cache / f'models--{REPO.replace("/", "--")}' / 'snapshots' / 'abc123'
    snap.mkdir(parents=True)
    shutil.copy(packaged_gguf, snap / FILE)
    (cache / f'models--{REPO.replace("/", "--")}' / 'refs').mkdir()
    (cache / f'models--{REPO.replace("/", "--")}' / 'refs' / 'main').write_text('abc123')
    choice = resolve_chat_model('', REPO, FILE, False, cache)
    assert choice.path == snap / FILE and 'cached' in choice.reason


def test_offline_falls_back_to_the_packaged_model_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr('kidscare_llm.core.llm.models.hub_reachable', lambda timeout=3.0: False)
    choice = resolve_chat_model('', REPO, FILE, True, tmp_path)
    assert choice.path == packaged_chat_model()
    assert 'offline' in choice.reason and 'weak at Korean' in choice.reason
    choice = resolve_chat_model('', REPO, FILE, False, tmp_path)
    assert 'kidscare-llm download-model' in choice.reason
