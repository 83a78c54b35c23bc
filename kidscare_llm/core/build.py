"""The one place where parameters become parts: every factory of the package lives here.

Nodes, the CLI, the chat window's --local mode, the benches and `kidscare_llm.open_engine`
all assemble through these functions, so a part is built the same way wherever it runs.
Heavy libraries are imported inside the classes they wrap, not here.
"""

import logging
from pathlib import Path
from typing import Any, Callable, List, Mapping, Optional
from urllib.parse import urlparse

from kidscare_llm.core import paths
from kidscare_llm.core.chat.alerts import AlertLog
from kidscare_llm.core.chat.engine import ChatEngine, EngineOptions
from kidscare_llm.core.chat.persona import load_persona, Persona
from kidscare_llm.core.chat.sessions import SessionStore
from kidscare_llm.core.errors import ConfigError
from kidscare_llm.core.llm.base import Backend, Sampling

log = logging.getLogger(__name__)
Params = Mapping[str, Any]
# A model this large on the CPU is slow enough for a child to notice: the log says so.
CPU_MODEL_WARN_BYTES = 2 * 10**9


# ----------------------------------------------------------------------------- chat

def build_backend(params: Params, data_dir: Optional[Path] = None) -> Backend:
    """Create the configured LLM backend; for llama.cpp resolve and load the model."""
    data_dir = data_dir or paths.data_dir(params['data_dir'])
    backend = params['llm.backend']
    if backend == 'openai':
        from kidscare_llm.core.llm.openai import OpenAIBackend

        host = urlparse(params['llm.base_url']).hostname or ''
        local = host in ('localhost', '127.0.0.1', '::1')
        log.log(logging.INFO if local else logging.WARNING,
                'LLM backend: OpenAI-compatible server %s%s', params['llm.base_url'],
                '' if local else ' (not this robot: every conversation is sent there)')
        return OpenAIBackend(params['llm.base_url'], params['llm.model'],
                             params['llm.api_key_env'], params['model.n_ctx'],
                             params['llm.timeout_s'])
    if backend != 'llama_cpp':
        raise ConfigError(f"llm.backend must be 'llama_cpp' or 'openai', got {backend!r}")
    from kidscare_llm.core.llm.llama_cpp import LlamaCppBackend
    from kidscare_llm.core.llm.models import resolve_chat_model

    choice = resolve_chat_model(params['model.path'], params['model.repo'],
                                params['model.file'], params['model.download'],
                                data_dir / 'models')
    spill = data_dir / 'kv' / choice.path.stem if params['memory.snapshots_on_disk'] else None
    model = LlamaCppBackend(choice.path, params['model.n_ctx'], params['model.n_threads'],
                            params['model.n_gpu_layers'], params['memory.snapshot_mb'], spill)
    log.info('model: %s (%s) from %s', model.describe(), choice.reason, choice.path)
    if not model.n_gpu_layers and choice.path.stat().st_size > CPU_MODEL_WARN_BYTES:
        log.warning('a %.1f GB model runs on the CPU: expect tens of seconds to minutes per '
                    'reply (docs/performance.md); build llama.cpp for the GPU '
                    '(scripts/setup.sh --cuda), or at least set rag.context_tokens to 200',
                    choice.path.stat().st_size / 1e9)
    return model


def build_persona(params: Params) -> Persona:
    """Load the persona: the caregiver's edited copy, else persona.dir, else the packaged one.

    The console's Persona page saves an edit to <data dir>/persona/ (core/caregiver/persona.py);
    it wins until the caregiver resets it there.
    """
    from kidscare_llm.core.caregiver.persona import edited_dir, has_edit

    data_dir = paths.data_dir(params['data_dir'])
    if has_edit(data_dir):
        log.info("persona: the caregiver's edited copy in %s (reset it on the console's "
                 'Persona page)', edited_dir(data_dir))
        return load_persona(edited_dir(data_dir))
    folder = params['persona.dir']
    return load_persona(Path(folder).expanduser() if folder else paths.default_persona_dir())


def source_paths(params: Params) -> List[Path]:
    """Return the paths listed in rag.sources."""
    return [Path(p.strip()).expanduser() for p in params['rag.sources'].split(',') if p.strip()]


def build_knowledge_base(params: Params, name: str = '', analyzer=None):
    """Create the knowledge base the parameters describe (embedder, analyser, Chroma)."""
    from kidscare_llm.core.rag.embeddings import create_embedder
    from kidscare_llm.core.rag.knowledge import KnowledgeBase
    from kidscare_llm.core.rag.korean import KoreanAnalyzer

    return KnowledgeBase(
        paths.data_dir(params['data_dir']) / 'knowledge', name or params['rag.name'],
        create_embedder(params['rag.embedder']), analyzer or KoreanAnalyzer(),
        chroma_url=params['rag.chroma_url'], chunk_chars=params['rag.chunk_chars'],
        overlap=params['rag.chunk_overlap'], fusion_weight=params['rag.fusion_weight'],
        candidates=params['rag.candidates'], min_dense=params['rag.min_dense'],
        min_bm25=params['rag.min_bm25'], fusion=params['rag.fusion'])


def build_safety(params: Params, analyzer=None, backend: Optional[Backend] = None,
                 embedder=None):
    """Create the child-safety checker (None, loudly, when safety.enabled is false).

    embedder: retrieval's, so the learned stage reads the utterance's embedding for free.
    """
    if not params['safety.enabled']:
        log.warning('child safety is OFF (safety.enabled: false): nothing checks what the '
                    'child says or what the model answers')
        return None
    from kidscare_llm.core.safety.checker import SafetyChecker

    config = Path(params['safety.config_dir']) if params['safety.config_dir'] else None
    safety = SafetyChecker.load(config, analyzer=analyzer, embedder=embedder).warm_up()
    if params['safety.judge']:
        from kidscare_llm.core.safety.judge import create_judge

        safety.judge = create_judge(backend, safety.policy.priority, params['safety.judge_low'])
        log.info('child safety: the judge stage asks %s when P is from %.2f', backend.describe()
                 if safety.judge else 'nothing (no chat backend)', params['safety.judge_low'])
    log.info('child safety: checks on input%s, config %s',
             ' and every spoken sentence' if params['safety.check_output'] else '',
             config or 'packaged')
    return safety


def sampling(params: Params) -> Sampling:
    """Return the sampling settings of llm.temperature, llm.top_p and llm.max_tokens."""
    return Sampling(params['llm.temperature'], params['llm.top_p'], params['llm.max_tokens'])


def engine_options(params: Params) -> EngineOptions:
    """Return the engine's options from the node parameters."""
    return EngineOptions(
        sampling=sampling(params), max_utterance_chars=params['chat.max_utterance_chars'],
        inline_informations=params['persona.inline_informations'],
        top_k=params['rag.top_k'], memory_top_k=params['memory.top_k'],
        context_tokens=params['rag.context_tokens'],
        summarize=params['memory.summarize'], check_output=params['safety.check_output'],
        sources=tuple(source_paths(params)))


def build_engine(params: Params, backend: Optional[Backend] = None) -> ChatEngine:
    """Create a ChatEngine and all its parts from node parameters (see core/settings.py)."""
    data_dir = paths.data_dir(params['data_dir'])
    persona = build_persona(params)
    backend = backend or build_backend(params, data_dir)
    knowledge = None
    if params['rag.enabled']:
        knowledge = build_knowledge_base(params)
        if params['rag.index_persona'] and persona.informations:
            knowledge.add_text('persona:informations.txt', persona.line('informations_title'),
                               persona.informations)
        if source_paths(params):
            knowledge.ingest(source_paths(params), progress=True)
        log.info('knowledge base %s: %d chunks (%s)', params['rag.name'], len(knowledge),
                 knowledge.embedder.name)
    # one Kiwi (about 500 MB) and one embedder for retrieval, memory and safety
    analyzer = knowledge.analyzer if knowledge is not None else None
    safety = build_safety(params, analyzer, backend,
                          knowledge.embedder if knowledge is not None else None)
    memory = build_memory(params, backend, knowledge, safety)
    return ChatEngine(backend, persona, SessionStore(data_dir / 'sessions.sqlite3'),
                      engine_options(params), knowledge, safety,
                      AlertLog(data_dir / 'alerts.jsonl'), memory)


def build_memory(params: Params, backend: Optional[Backend] = None, knowledge=None,
                 safety=None):
    """Create child memory (None when memory.enabled is false), sharing Kiwi and the embedder."""
    if not params['memory.enabled']:
        log.info('child memory is off (memory.enabled: false)')
        return None
    from kidscare_llm.core.memory.child_memory import ChildMemory

    if knowledge is not None:
        embedder, analyzer = knowledge.embedder, knowledge.analyzer
    else:
        from kidscare_llm.core.rag.embeddings import create_embedder
        from kidscare_llm.core.rag.korean import KoreanAnalyzer

        embedder = create_embedder(params['rag.embedder'])
        analyzer = safety.analyse.analyzer if safety is not None else KoreanAnalyzer()
    folder = paths.data_dir(params['data_dir']) / 'memory'
    memory = ChildMemory(folder, embedder, analyzer, safety, params['memory.extract'], backend,
                         params['memory.top_k'], params['memory.min_dense'])
    log.info('child memory: %s, %d children, extraction %s', folder, len(memory.users()),
             params['memory.extract'])
    return memory


def apply_live(engine: ChatEngine, changes: Params) -> None:
    """Apply changed live parameters (params.py, live=True) to a running engine.

    All-or-nothing: the new options are validated before any is applied. Node-level ones
    (chat.stream_interval_ms) are the node's own business and ignored here.
    """
    options = engine.options
    new = {}
    if {'llm.temperature', 'llm.top_p', 'llm.max_tokens'} & set(changes):
        old = options.sampling
        new['sampling'] = Sampling(changes.get('llm.temperature', old.temperature),
                                   changes.get('llm.top_p', old.top_p),
                                   changes.get('llm.max_tokens', old.max_tokens))
    for name, field in (('rag.top_k', 'top_k'), ('rag.context_tokens', 'context_tokens'),
                        ('memory.top_k', 'memory_top_k'),
                        ('chat.max_utterance_chars', 'max_utterance_chars')):
        if name in changes:
            new[field] = changes[name]
    if new:
        engine.update(**new)
    if engine.memory is not None and 'memory.min_dense' in changes:
        engine.memory.min_dense = changes['memory.min_dense']
    if engine.knowledge is not None:
        for name in ('rag.fusion', 'rag.fusion_weight', 'rag.min_dense', 'rag.min_bm25'):
            if name in changes:
                setattr(engine.knowledge, name.split('.', 1)[1], changes[name])
    log.info('parameters changed at run time: %s',
             ', '.join(f'{k}={v!r}' for k, v in sorted(changes.items())))


# ----------------------------------------------------------------------------- voice

def vad_settings(params: Params):
    """Return the VAD settings from the stt_node parameters."""
    from kidscare_llm.core.voice.stt import VadSettings

    return VadSettings(threshold=params['vad.threshold'],
                       min_silence_ms=params['vad.min_silence_ms'],
                       min_speech_ms=params['vad.min_speech_ms'],
                       max_utterance_s=params['vad.max_utterance_s'])


def build_transcriber(params: Params):
    """Create the Transcriber the stt_node parameters describe."""
    from kidscare_llm.core.voice.stt import Transcriber

    return Transcriber(params['stt.model'], paths.data_dir(params['data_dir']) / 'models',
                       params['stt.language'], params['stt.device'], params['stt.compute_type'],
                       params['stt.beam_size'], params['stt.threads'], vad_settings(params))


def build_speaker(params: Params, on_speaking: Callable[[bool], None],
                  on_spoken: Callable[[dict], None], sink: Optional[Callable] = None):
    """Create the Synthesizer, Player and Speaker the tts_node parameters describe."""
    from kidscare_llm.core.voice.audio import has_device, Player, VoiceError
    from kidscare_llm.core.voice.tts import Speaker, Synthesizer

    synth = Synthesizer(params['tts.engine'], params['tts.piper_voice'],
                        params['tts.espeak_voice'], params['tts.threads'],
                        params['tts.length_scale'], params['tts.espeak_wpm'])
    output = params['tts.output']
    if output == 'auto':
        output = 'sound' if has_device('output') else 'wav'
    elif output in ('sound', 'both') and not has_device('output'):
        raise VoiceError(f'tts.output is {output}, but PortAudio sees no output device; set '
                         'tts.output to wav (or auto)')
    wav_dir = None
    if output in ('wav', 'both'):
        wav_dir = Path(params['tts.wav_dir'] or paths.data_dir(params['data_dir']) / 'tts')
        wav_dir = wav_dir.expanduser()
        wav_dir.mkdir(parents=True, exist_ok=True)
    player = Player(sound_card=output in ('sound', 'both'), realtime=params['tts.realtime'],
                    sink=sink if output == 'topic' else None)
    speaker = Speaker(synth, player, wav_dir, on_speaking, on_spoken)
    speaker.output = output + (f' into {wav_dir}' if wav_dir else '')
    return speaker
