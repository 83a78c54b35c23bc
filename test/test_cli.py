"""The kidscare-llm command line: argument errors, params output, say without a node."""

import os
import subprocess

import pytest

from conftest import BIN, ROOT
from kidscare_llm.cli import build_parser
from kidscare_llm.core import settings
from kidscare_llm.core.params import PARAMS


def run(*args, timeout=60):
    return subprocess.run([str(BIN / 'kidscare-llm'), *args], capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ))


@pytest.mark.parametrize('argv', [[], ['fly'], ['say'], ['say', 'hi', '--timeout', 'soon'],
                                  ['node', '--transport', 'carrier-pigeon']])
def test_argument_errors_exit_2_with_usage(argv):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == 2


def test_bad_parameter_override_is_one_clear_line():
    proc = run('chat', '-p', 'model.n_ctx=huge', '-m', 'hi')
    assert proc.returncode == 1
    assert proc.stderr.strip() == \
        "kidscare-llm chat: model.n_ctx: expected int, got 'huge'"


def test_params_yaml_is_the_packaged_file_and_markdown_lists_every_name():
    assert run('params', '--yaml').stdout == (ROOT / 'config' / 'kidscare.yaml').read_text()
    table = run('params', '--markdown').stdout
    assert all(f'`{p.name}`' in table for p in settings.params_for('chat_node'))


def test_say_without_a_node_times_out_clearly():
    proc = run('say', 'hello', '--timeout', '2', '--transport', 'dds')
    assert proc.returncode == 1
    assert 'no chat node found within 2 s' in proc.stderr


def test_rclpy_requested_without_ros_is_a_clear_error():
    from kidscare_llm.transport import rclpy_available
    if rclpy_available():
        pytest.skip('rclpy is importable here')
    proc = run('say', 'hello', '--transport', 'rclpy')
    assert proc.returncode == 1 and 'rclpy is not importable' in proc.stderr


@pytest.mark.parametrize('node', list(PARAMS))
def test_parameters_page_table_matches_the_code(node):
    page = (ROOT / 'docs' / 'parameters.md').read_text(encoding='utf-8')
    assert f'\n## {node}\n\n' + settings.render_markdown(node) in page, \
        f'docs/parameters.md: regenerate the {node} table (recipe in docs/development.md)'


def test_say_refuses_blank_text_at_once():
    for blank in ('', '  \x01\x02 '):
        proc = run('say', '--transport', 'dds', blank, timeout=30)
        assert proc.returncode == 2 and 'nothing to say' in proc.stderr


@pytest.mark.slow
def test_chat_takes_undecodable_control_and_huge_input(tmp_path):
    """Invalid UTF-8 in argv, control characters, 100 kB (argv's limit): each answered."""
    env = dict(os.environ, KIDSCARE_DATA_DIR=str(tmp_path / 'data'))
    argv = [str(BIN / 'kidscare-llm').encode(), b'chat', b'-p', b'llm.max_tokens=8',
            b'-p', b'rag.enabled=false', b'-m', b'hello \xff\xfe robot', b'-m', b'hi\x07\x1b[0m',
            b'-m', b'x' * 100_000]
    proc = subprocess.run(argv, capture_output=True, env=env, timeout=300)
    out = proc.stdout.decode('utf-8', 'replace')
    assert proc.returncode == 0, proc.stderr.decode('utf-8', 'replace')[-2000:]
    assert out.count('robot> ') == 3 and '너무 길어서' in out
    assert 'Traceback' not in proc.stderr.decode('utf-8', 'replace')
