"""Audio plumbing shared by speech in and out: WAV files, resampling, sound card, playback.

Audio topics carry AudioChunk values (mono float32 and a rate); the transports turn them into
audio_common_msgs/AudioStamped messages and back (decode_pcm reads any of its sample formats).

Plain numpy plus the standard library; sounddevice (PortAudio) is imported only when a sound
card is asked for, so a headless robot without libportaudio still runs with WAV output.
"""

from dataclasses import dataclass
import io
import logging
from pathlib import Path
import threading
import time
from typing import Callable, Optional, Tuple, Union
import wave

import numpy as np

from kidscare_llm.core.errors import KidscareError

log = logging.getLogger(__name__)

STT_RATE = 16000  # what whisper and Silero VAD expect
BLOCK_S = 0.02  # playback block: how often a running playback looks at its stop flag


# audio_common_msgs/AudioInfo.format: PortAudio's sample format flags
PA_FLOAT32, PA_INT32, PA_INT16, PA_INT8, PA_UINT8 = 1, 2, 8, 16, 32
_PCM = {PA_FLOAT32: ('float32_data', 1.0, 0.0), PA_INT32: ('int32_data', 2147483648.0, 0.0),
        PA_INT16: ('int16_data', 32768.0, 0.0), PA_INT8: ('int8_data', 128.0, 0.0),
        PA_UINT8: ('uint8_data', 128.0, 128.0)}


class VoiceError(KidscareError):
    """Speech in or out cannot work as configured (model, voice, device or audio file)."""


@dataclass
class AudioChunk:
    """One block of audio on an audio topic: mono float32 samples in [-1, 1] and their rate."""

    samples: np.ndarray
    rate: int


def decode_pcm(fmt: int, channels: int, data) -> np.ndarray:
    """Return mono float32 from an AudioData-like object (float32_data, int16_data, ...).

    fmt is the PortAudio flag audio_common_msgs uses; interleaved channels are averaged.
    """
    if fmt not in _PCM:
        raise VoiceError(f'audio format {fmt} is not one of {sorted(_PCM)} (PortAudio flags)')
    field, scale, offset = _PCM[fmt]
    audio = (np.asarray(getattr(data, field), np.float32) - offset) / scale
    if channels > 1:
        audio = audio[:len(audio) - len(audio) % channels].reshape(-1, channels).mean(axis=1)
    elif channels < 1:
        raise VoiceError(f'audio with {channels} channels')
    return audio


def chunk_from_stamped(msg) -> AudioChunk:
    """Read an audio_common_msgs/AudioStamped (either transport's message object)."""
    info = msg.audio.info
    return AudioChunk(decode_pcm(info.format, info.channels, msg.audio.audio_data), info.rate)


class StreamResampler:
    """Resample a stream block by block without clicks at the block edges (linear, stateful).

    Good enough for speech recognition; for 16 kHz input (the ROS audio capturers' default)
    it passes the blocks through untouched.
    """

    def __init__(self, dst: int):
        self.dst = dst
        self.src = 0
        self._tail = np.zeros(0, np.float32)
        self._pos = 0.0  # where the next output sample falls, in samples of _tail + block

    def __call__(self, block: np.ndarray, rate: int) -> np.ndarray:
        """Return block (at rate Hz) resampled to dst Hz, continuing the previous blocks."""
        if rate != self.src:  # a new stream, or its rate changed: start afresh
            self.src, self._tail, self._pos = rate, np.zeros(0, np.float32), 0.0
        if rate == self.dst:
            return block.astype(np.float32)
        x = np.concatenate([self._tail, block.astype(np.float32)])
        step = rate / self.dst
        count = max(0, int(np.floor((len(x) - 1 - self._pos) / step)) + 1)
        where = self._pos + step * np.arange(count)
        out = np.interp(where, np.arange(len(x)), x).astype(np.float32)
        self._pos += step * count
        keep = min(int(self._pos), len(x))
        self._tail, self._pos = x[keep:], self._pos - keep
        return out


def _int_pcm_to_float(raw: bytes, width: int) -> np.ndarray:
    if width == 1:
        return (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
    if width == 2:
        return np.frombuffer(raw, '<i2').astype(np.float32) / 32768.0
    if width == 4:
        return np.frombuffer(raw, '<i4').astype(np.float32) / 2147483648.0
    raise VoiceError(f'unsupported WAV sample width {width * 8} bits')


def read_wav(source: Union[str, Path, bytes]) -> Tuple[np.ndarray, int]:
    """Read a PCM WAV file (path or bytes) as mono float32 in [-1, 1] and its sample rate."""
    name = '<bytes>' if isinstance(source, bytes) else str(source)
    try:
        handle = wave.open(io.BytesIO(source) if isinstance(source, bytes) else str(source))
        with handle as w:
            channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
            raw = w.readframes(w.getnframes())
    except FileNotFoundError:
        raise VoiceError(f'audio file not found: {name}') from None
    except (wave.Error, EOFError, OSError) as exc:
        raise VoiceError(f'{name} is not a readable PCM WAV file ({exc}); convert it with '
                         '`ffmpeg -i IN -ac 1 -ar 16000 OUT.wav`') from None
    audio = _int_pcm_to_float(raw[:len(raw) - len(raw) % (width * channels)], width)
    if channels > 1:
        audio = audio.reshape(-1, channels).mean(axis=1)
    return audio.astype(np.float32), rate


def wav_bytes(audio: np.ndarray, rate: int) -> bytes:
    """Encode mono float32 audio as 16-bit PCM WAV bytes."""
    pcm = (np.clip(audio, -1.0, 1.0) * 32767.0).astype('<i2')
    out = io.BytesIO()
    with wave.open(out, 'wb') as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(rate))
        w.writeframes(pcm.tobytes())
    return out.getvalue()


def write_wav(path: Union[str, Path], audio: np.ndarray, rate: int) -> Path:
    """Write mono float32 audio as a 16-bit PCM WAV file (parent folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(wav_bytes(audio, rate))
    return path


def resample(audio: np.ndarray, src: int, dst: int) -> np.ndarray:
    """Resample mono audio from src to dst Hz (polyphase filter, no aliasing)."""
    if src == dst:
        return audio.astype(np.float32)
    from math import gcd

    from scipy.signal import resample_poly
    g = gcd(int(src), int(dst))
    return resample_poly(audio, dst // g, src // g).astype(np.float32)


def load_for_stt(path: Union[str, Path]) -> np.ndarray:
    """Read a WAV file as 16 kHz mono float32, the input whisper wants."""
    audio, rate = read_wav(path)
    return resample(audio, rate, STT_RATE)


def _sounddevice():
    try:
        import sounddevice
        return sounddevice
    except (ImportError, OSError):  # no module, or no libportaudio2
        return None


def has_device(kind: str) -> bool:
    """Return True when PortAudio sees a default 'input' or 'output' device."""
    sd = _sounddevice()
    if sd is None:
        return False
    try:
        sd.query_devices(kind=kind)
        return True
    except Exception:  # PortAudioError / ValueError: no such device
        return False


@dataclass
class Played:
    """How one playback went: when its first sample went out, when it ended, if stopped."""

    start: float
    end: float
    stopped: bool


class Player:
    """Plays audio in short blocks on the sound card, or paced in real time when headless.

    stop() makes the running play() return within one block (20 ms); with realtime False
    and no sound card, play() returns at once (WAV output only, for batch synthesis). A sink
    (an audio topic) gets each block as it is due, so the stream is paced in real time.
    """

    def __init__(self, sound_card: bool, realtime: bool = True,
                 sink: Optional[Callable[[AudioChunk], None]] = None):
        self.sound_card = sound_card
        self.realtime = realtime or sink is not None
        self.sink = sink
        self._stop = threading.Event()
        self._halted = threading.Event()
        self._halted.set()
        self._stream = None
        if sound_card and _sounddevice() is None:
            raise VoiceError('a sound card was asked for, but sounddevice/PortAudio is missing '
                             '(apt install libportaudio2), or set tts.output to wav')

    def play(self, audio: np.ndarray, rate: int,
             on_start: Optional[Callable[[float], None]] = None) -> Played:
        """Play mono float32 audio; return when it ends or stop() is called."""
        self._stop.clear()
        self._halted.clear()
        block = max(1, int(rate * BLOCK_S))
        start = time.time()
        stopped = False
        try:
            if on_start:
                on_start(start)
            if self.sound_card:
                stopped = self._play_device(audio, rate, block)
            elif self.realtime:
                t0 = time.monotonic()
                for i in range(0, len(audio), block):
                    if self.sink is not None:
                        self.sink(AudioChunk(audio[i:i + block], rate))
                    due = t0 + (i + block) / rate
                    while True:  # sleep to the end of this block, or stop
                        left = due - time.monotonic()
                        if self._stop.wait(max(0.0, min(left, BLOCK_S))):
                            stopped = True
                            break
                        if left <= BLOCK_S:
                            break
                    if stopped:
                        break
        finally:
            self._halted.set()
        return Played(start, time.time(), stopped)

    def _play_device(self, audio: np.ndarray, rate: int, block: int) -> bool:
        sd = _sounddevice()
        with sd.OutputStream(samplerate=rate, channels=1, dtype='float32',
                             blocksize=block) as stream:
            self._stream = stream
            try:
                for i in range(0, len(audio), block):
                    if self._stop.is_set():
                        stream.abort()  # drop what the device still buffers
                        return True
                    stream.write(np.ascontiguousarray(audio[i:i + block], np.float32))
            finally:
                self._stream = None
        return self._stop.is_set()

    def stop(self, timeout: float = 0.5) -> bool:
        """Stop the running playback; return True once it has halted."""
        self._stop.set()
        return self._halted.wait(timeout)
