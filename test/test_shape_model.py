"""bench/shape_model.py: the 8B plan is the real Q4_K_M's, and a tiny shape runs in the engine."""

import importlib.util
import json
from pathlib import Path
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT

_spec = importlib.util.spec_from_file_location('shape_model', ROOT / 'bench' / 'shape_model.py')
shape_model = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(shape_model)
gguf = pytest.importorskip('gguf', reason='the gguf package (requirements-dev.txt) writes GGUF')


def test_8b_plan_is_llama3_8b_q4_k_m():
    tensors = shape_model.plan(shape_model.SHAPES['8b'], 128256)
    kinds = {t.name: t.kind for t in tensors}
    assert len(tensors) == 2 + 32 * 9 + 1
    assert sum(int(np.prod(t.shape)) for t in tensors) == 8_030_261_248  # Llama-3 8B
    assert kinds['token_embd.weight'] == 'Q4_K' and kinds['output.weight'] == 'Q6_K'
    more = [i for i in range(32) if kinds[f'blk.{i}.attn_v.weight'] == 'Q6_K']
    assert more == [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31]
    assert all(kinds[f'blk.{i}.ffn_down.weight'] == kinds[f'blk.{i}.attn_v.weight']
               for i in range(32))
    assert {kinds[f'blk.{i}.{n}.weight'] for i in range(32)
            for n in ('attn_q', 'attn_k', 'attn_output', 'ffn_gate', 'ffn_up')} == {'Q4_K'}
    assert tensors[1].shape == (4096,) and kinds['blk.0.attn_norm.weight'] == 'F32'
    shapes = {t.name: t.shape for t in tensors}
    assert shapes['blk.0.attn_k.weight'] == (1024, 4096)  # 8 KV heads of 128
    assert shapes['blk.0.ffn_down.weight'] == (4096, 14336)
    # the published Bllossom 8B Q4_K_M file is 4.92 GB, nearly all of it tensor data
    assert 4.90e9 < sum(t.nbytes for t in tensors) < 4.93e9


def test_more_bits_rule_matches_llama_cpp_for_other_depths():
    assert [i for i in range(16) if shape_model.use_more_bits(i, 16)] == \
        [0, 1, 4, 7, 10, 13, 14, 15]


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    """Write the tiny shape once for this module."""
    path = tmp_path_factory.mktemp('shape') / 'tiny.gguf'
    info = shape_model.write(path, shape_model.SHAPES['tiny'])
    assert info['bytes'] == path.stat().st_size
    return path


def test_tiny_file_has_the_mix_and_finite_scales(tiny):
    reader = gguf.GGUFReader(str(tiny))
    kinds = {t.name: t.tensor_type.name for t in reader.tensors}
    assert kinds['output.weight'] == 'Q6_K' and kinds['blk.0.attn_q.weight'] == 'Q4_K'
    assert kinds['blk.1.attn_v.weight'] == 'Q6_K'  # the last eighth gets more bits
    for t in reader.tensors:
        raw = np.asarray(t.data).view(np.uint8)
        if t.tensor_type.name == 'Q4_K':
            scales = raw.reshape(-1, 144)[:, :4].copy().view('<f2')
        elif t.tensor_type.name == 'Q6_K':
            scales = raw.reshape(-1, 210)[:, 208:].copy().view('<f2')
        else:
            scales = raw.copy().view('<f4')
        assert np.isfinite(scales).all(), t.name
    spec = reader.fields[shape_model.SHAPE_KEY]
    assert json.loads(bytes(spec.parts[-1]).decode())['layers'] == 2
    assert bytes(reader.fields['tokenizer.ggml.model'].parts[-1]) == b'llama'


def test_tiny_shape_runs_through_the_engine(tiny, tmp_path):
    import kidscare_llm

    engine = kidscare_llm.open_engine(**{
        'model.path': str(tiny), 'data_dir': str(tmp_path), 'rag.enabled': False,
        'safety.enabled': False, 'llm.temperature': 0.0, 'llm.max_tokens': 12,
        'model.n_ctx': 1024})
    try:
        assert engine.backend.chat_format == 'llama-3'
        first = engine.reply('라이언', '안녕! 오늘 공원에 갔어')
        second = engine.reply('라이언', '그네도 탔어')
    finally:
        engine.close()
    for reply in (first, second):
        assert reply.kind == 'answer' and reply.text
        assert reply.pieces == 12  # special tokens are never written: max_tokens, always
    assert second.prompt_evaluated < second.prompt_tokens / 2  # the first turn was reused


def test_cli_reuses_an_equal_file(tiny):
    proc = subprocess.run([sys.executable, str(ROOT / 'bench' / 'shape_model.py'), str(tiny),
                           '--shape', 'tiny'], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1])['reused'] is True
    assert Path(tiny).stat().st_size > 1_000_000
    assert shape_model.written_spec(tiny)['tokenizer'] == 'synthetic SentencePiece'
