"""The public names a robot integrator relies on: none may vanish when the inside changes.

Console scripts, CLI commands, launch arguments, each node's topics, services and parameters
are listed here as they were shipped; a rename or a removal fails this test, an addition is
fine. The nodes are built over a recording transport with their heavy parts replaced.
"""

import ast
import configparser
import re
from types import SimpleNamespace

from conftest import ROOT
from kidscare_llm.cli import build_parser
from kidscare_llm.core import settings
from kidscare_llm.nodes.chat_node import ChatNode
from kidscare_llm.nodes.stt_node import SttNode
from kidscare_llm.nodes.tts_node import TtsNode

CONSOLE_SCRIPTS = {'kidscare-llm', 'chat_node', 'stt_node', 'tts_node', 'console_node'}
COMMANDS = {'chat', 'node', 'say', 'ingest', 'download-model', 'gui', 'params', 'doctor',
            'console', 'memory'}
LAUNCH_ARGUMENTS = {'params_file', 'model_path', 'persona', 'use_stt', 'use_tts', 'audio_in',
                    'audio_out', 'log_level', 'discovery_range', 'use_console'}
TOPICS = {
    'chat_node': {'pub': {'robot_reply', 'robot_reply_partial', 'robot_reply_sources',
                          'caregiver_alert', 'robot_reply_stream',
                          'caregiver_command_result'},
                  'sub': {'user_utterance', '~/session', 'caregiver_command'},
                  'srv': {'~/reset_session', '~/cancel', '~/reindex', '~/describe'}},
    'stt_node': {'pub': {'user_utterance', '~/listening'},
                 'sub': {'robot_speaking', '~/push_to_talk', 'audio/in'}, 'srv': set()},
    'tts_node': {'pub': {'robot_speaking', '~/spoken', '~/stopped', 'audio/out'},
                 'sub': {'robot_reply_partial', 'robot_reply'}, 'srv': {'~/stop'}},
}
PARAMETERS = {
    'chat_node': (
        'data_dir persona.dir persona.inline_informations model.path model.repo model.file '
        'model.download model.n_ctx model.n_threads model.n_gpu_layers llm.backend '
        'llm.base_url llm.model llm.api_key_env llm.timeout_s llm.temperature llm.top_p '
        'llm.max_tokens rag.enabled rag.name rag.sources rag.index_persona rag.embedder '
        'rag.chroma_url rag.chunk_chars rag.chunk_overlap rag.fusion_weight rag.candidates '
        'rag.top_k rag.context_tokens rag.min_dense rag.min_bm25 memory.snapshot_mb '
        'memory.snapshots_on_disk memory.summarize memory.warm_start chat.default_user '
        'chat.max_utterance_chars chat.queue_size chat.stream_tokens chat.stream_interval_ms '
        'safety.enabled safety.config_dir safety.check_output memory.enabled memory.extract '
        'memory.top_k memory.min_dense rules.quiet_hours rules.daily_limit_min retention.days'),
    'console_node': 'data_dir console.bind console.port console.lang',
    'stt_node': (
        'data_dir stt.model stt.language stt.device stt.compute_type stt.beam_size stt.threads '
        'stt.input stt.always_listen stt.while_speaking stt.cancel_services stt.echo_guard_ms '
        'stt.file_wait_s vad.threshold vad.min_silence_ms vad.min_speech_ms '
        'vad.max_utterance_s'),
    'tts_node': (
        'data_dir tts.engine tts.piper_voice tts.espeak_voice tts.espeak_wpm tts.length_scale '
        'tts.threads tts.output tts.wav_dir tts.realtime'),
}


class RecordingTransport:
    """Records every name a node publishes, subscribes to or serves; sends nothing."""

    def __init__(self, node, overrides):
        self.node, self.overrides = node, overrides
        self.names = {'pub': set(), 'sub': set(), 'srv': set()}

    def parameters(self, node):
        return settings.load(node, [], self.overrides)

    def publisher(self, topic, msg_type, depth=None):
        self.names['pub'].add(topic)
        return lambda value: None

    def subscribe(self, topic, msg_type, callback, depth=None):
        self.names['sub'].add(topic)

    def serve_trigger(self, service, handler):
        self.names['srv'].add(service)

    def on_parameter_change(self, handler):
        pass


def test_console_scripts_and_commands():
    source = (ROOT / 'setup.py').read_text(encoding='utf-8')
    scripts = set(re.findall(r"'([\w-]+) = kidscare_llm[\w.]+:main'", source))
    assert CONSOLE_SCRIPTS <= scripts
    sub = next(a for a in build_parser()._actions if a.dest == 'command')
    assert COMMANDS <= set(sub.choices)
    assert configparser.ConfigParser().read(ROOT / 'setup.cfg')


def test_launch_arguments():
    tree = ast.parse((ROOT / 'launch' / 'chat.launch.py').read_text(encoding='utf-8'))
    declared = {node.args[0].value for node in ast.walk(tree)
                if isinstance(node, ast.Call) and getattr(node.func, 'id', '') ==
                'DeclareLaunchArgument'}
    assert LAUNCH_ARGUMENTS <= declared


def test_parameter_names():
    for node, names in PARAMETERS.items():
        assert set(names.split()) <= {p.name for p in settings.params_for(node)}, node


def _fake_engine(params):
    return SimpleNamespace(describe=lambda: 'fake', session=lambda user: f'{user}_0',
                           warm=lambda: 0, checkpoint=lambda: None, close=lambda: None,
                           on_alert=None)


def test_topics_and_services_of_each_node():
    chat = RecordingTransport('chat_node', {'memory.warm_start': False})
    node = ChatNode(chat, engine_factory=_fake_engine)
    node.close()
    stt = RecordingTransport('stt_node', {'stt.input': 'topic'})
    SttNode(stt, transcriber_factory=lambda params: SimpleNamespace(describe=lambda: 'fake'))
    tts = RecordingTransport('tts_node', {'tts.output': 'topic'})
    synth = SimpleNamespace(load=lambda name: None)
    speaker = SimpleNamespace(output='topic', synth=synth, close=lambda: None, busy=lambda: False)
    tts_node = TtsNode(tts, speaker_factory=lambda params, *hooks, **kw: speaker)
    tts_node._stop.set()  # its heartbeat thread ends
    for transport in (chat, stt, tts):
        for kind, expected in TOPICS[transport.node].items():
            assert expected <= transport.names[kind], (transport.node, kind)
