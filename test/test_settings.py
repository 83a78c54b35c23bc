"""Parameters: one table, the packaged YAML rendered from it, strict names and types."""

import pytest

from conftest import ROOT
from kidscare_llm.core import settings
from kidscare_llm.core.errors import ConfigError
from kidscare_llm.transport.base import parse_ros_args, resolve_name


def test_packaged_yaml_is_rendered_from_the_table():
    assert (ROOT / 'config' / 'kidscare.yaml').read_text(encoding='utf-8') == \
        settings.render_yaml()


def test_packaged_yaml_reads_back_as_the_defaults():
    values = settings.load('chat_node', ROOT / 'config' / 'kidscare.yaml')
    assert values == settings.defaults('chat_node')


def test_every_parameter_has_a_description():
    for p in settings.params_for('chat_node'):
        assert len(p.description) > 10, p.name


def test_overrides_are_coerced_to_the_default_type():
    values = settings.load('chat_node', overrides={'model.n_ctx': '2048', 'llm.temperature': 0,
                                                   'model.download': 'false'})
    assert values['model.n_ctx'] == 2048
    assert values['llm.temperature'] == 0.0 and isinstance(values['llm.temperature'], float)
    assert values['model.download'] is False


@pytest.mark.parametrize('overrides, message', [
    ({'model.pth': 'x'}, "unknown parameter 'model.pth'"),
    ({'model.n_ctx': 'big'}, 'model.n_ctx: expected int'),
    ({'model.download': 'maybe'}, 'expected true or false'),
])
def test_bad_parameters_are_named(overrides, message):
    with pytest.raises(ConfigError, match=message):
        settings.load('chat_node', overrides=overrides)


def test_params_file_errors_are_clear(tmp_path):
    bad = tmp_path / 'bad.yaml'
    bad.write_text('chat_node: [unclosed', encoding='utf-8')
    with pytest.raises(ConfigError, match='not valid YAML'):
        settings.load('chat_node', bad)
    with pytest.raises(ConfigError, match='cannot read parameter file'):
        settings.load('chat_node', tmp_path / 'missing.yaml')


def test_params_file_layers_under_overrides(tmp_path):
    f = tmp_path / 'p.yaml'
    f.write_text('chat_node:\n  ros__parameters:\n    model:\n      n_ctx: 1024\n'
                 '    chat:\n      default_user: mina\n', encoding='utf-8')
    values = settings.load('chat_node', f, {'model.n_ctx': '512'})
    assert values['model.n_ctx'] == 512 and values['chat.default_user'] == 'mina'
    later = tmp_path / 'later.yaml'  # as ros2 launch passes them: later files win
    later.write_text('/**:\n  ros__parameters:\n    chat:\n      default_user: lion\n',
                     encoding='utf-8')
    values = settings.load('chat_node', [f, later])
    assert values['model.n_ctx'] == 1024 and values['chat.default_user'] == 'lion'


def test_parse_overrides_needs_equals():
    assert settings.parse_overrides(['a.b=1', 'c=x=y']) == {'a.b': '1', 'c': 'x=y'}
    with pytest.raises(ConfigError):
        settings.parse_overrides(['novalue'])


def test_ros_args_as_launch_passes_them():
    argv = ['chat_node', '--ros-args', '-r', '__node:=chat_node', '--params-file', '/p.yaml',
            '-p', 'model.n_ctx:=1024', '-r', 'user_utterance:=/stt/text', '--log-level',
            'chat_node:=debug']
    params_files, overrides, remaps, level = parse_ros_args(argv)
    assert params_files == ['/p.yaml']
    assert overrides == {'model.n_ctx': '1024'}
    assert remaps == {'user_utterance': '/stt/text'}
    assert level == 'debug'


def test_name_resolution():
    assert resolve_name('~/session', 'chat_node') == '/chat_node/session'
    assert resolve_name('user_utterance', 'chat_node', '/robot1') == '/robot1/user_utterance'
    assert resolve_name('/abs', 'chat_node', '/robot1') == '/abs'
    assert resolve_name('user_utterance', 'n', '/', {'user_utterance': '/stt/text'}) == \
        '/stt/text'
