"""STT node: microphone, audio topic or WAV file -> VAD -> faster-whisper -> /user_utterance.

Topics: pub user_utterance (each finished utterance), ~/listening (Bool, capture state);
sub robot_speaking (Bool), ~/push_to_talk (Bool: true starts capturing, false transcribes),
audio/in (audio_common_msgs/AudioStamped, with stt.input topic).
While the robot speaks, stt.while_speaking picks mute (ignore) or barge_in (call
stt.cancel_services, e.g. /chat_node/cancel and /tts_node/stop, then publish).
`stt_node --file x.wav [--realtime]` transcribes a file, publishes each utterance and exits;
--realtime feeds it at speaking pace through the same streaming VAD as the microphone;
the exit status is 3 when the file held no speech.
"""

import argparse
import logging
import queue
import sys
import threading
import time
from typing import Callable, List, Optional

import numpy as np

from kidscare_llm.core import paths
from kidscare_llm.core.voice.audio import (AudioChunk, has_device, load_for_stt, StreamResampler,
                                     STT_RATE)
from kidscare_llm.core.errors import KidscareError
from kidscare_llm.core.settings import STT_NODE
from kidscare_llm.core.voice.stt import Microphone, Segmenter, Transcriber, VadSettings
from kidscare_llm.nodes.runner import run_node
from kidscare_llm.transport import MSG_AUDIO, MSG_BOOL, MSG_STRING, Transport

log = logging.getLogger('kidscare_llm.stt_node')


def build_transcriber(params: dict) -> Transcriber:
    """Create the Transcriber the parameters describe."""
    return Transcriber(params['stt.model'], paths.data_dir(params['data_dir']) / 'models',
                       params['stt.language'], params['stt.device'], params['stt.compute_type'],
                       params['stt.beam_size'], params['stt.threads'], vad_settings(params))


def vad_settings(params: dict) -> VadSettings:
    """Return the VAD settings from the parameters."""
    return VadSettings(threshold=params['vad.threshold'],
                       min_silence_ms=params['vad.min_silence_ms'],
                       min_speech_ms=params['vad.min_speech_ms'],
                       max_utterance_s=params['vad.max_utterance_s'])


class SttNode:
    """Wires a Transcriber to topics; one worker thread transcribes utterances in order."""

    def __init__(self, transport: Transport,
                 transcriber_factory: Callable[[dict], Transcriber] = build_transcriber):
        self.transport = transport
        params = transport.parameters(STT_NODE)
        self.mode = params['stt.while_speaking']
        self.cancel_services = [s.strip() for s in params['stt.cancel_services'].split(',')
                                if s.strip()]
        self.echo_guard_s = params['stt.echo_guard_ms'] / 1000.0
        self.file_wait_s = params['stt.file_wait_s']
        self.always_listen = params['stt.always_listen']
        self.transcriber = transcriber_factory(params)
        self.robot_speaking = False
        self.robot_quiet_since = 0.0
        self.push_to_talk = False
        self.published = 0
        self._ptt_audio: List[np.ndarray] = []
        self._jobs: queue.Queue = queue.Queue()
        # An audio topic just stops when its speaker does: no trailing silence ends the last
        # utterance, so a stream quiet for longer than the VAD's silence counts as ended.
        self.stream_gap_s = params['vad.min_silence_ms'] / 1000.0 + 0.2
        self._streaming = False
        self.segmenter = Segmenter(self._on_speech, vad_settings(params))
        self.publish_utterance = transport.publisher('user_utterance', MSG_STRING)
        self.publish_listening = transport.publisher('~/listening', MSG_BOOL)
        transport.subscribe('robot_speaking', MSG_BOOL, self.on_robot_speaking)
        transport.subscribe('~/push_to_talk', MSG_BOOL, self.on_push_to_talk)
        self.microphone: Optional[Microphone] = None
        source = params['stt.input']
        if source == 'auto':
            source = 'microphone' if has_device('input') else 'none'
        if source == 'microphone':
            self.microphone = Microphone(self.on_audio)
        self.source = source
        self.topic_listening = False  # with stt.input topic: whether audio/in is taken in
        if source == 'topic':
            self._resample = StreamResampler(STT_RATE)
            transport.subscribe('audio/in', MSG_AUDIO, self.on_audio_message, depth=100)
        self._worker = threading.Thread(target=self._work, name='stt-worker', daemon=True)
        self._worker.start()
        log.info('stt node ready: %s; input %s; while the robot speaks: %s',
                 self.transcriber.describe(), source, self.mode)

    def start_listening(self) -> None:
        """Open the microphone (or take in audio/in) when always_listen is on."""
        if not self.always_listen:
            return
        if self.microphone is not None:
            self.microphone.start()
            self.publish_listening(True)
        elif self.source == 'topic':
            self.topic_listening = True
            self.publish_listening(True)

    # -- inputs ----------------------------------------------------------------------------
    def on_robot_speaking(self, speaking: bool) -> None:
        """Track whether the robot is talking (for mute / barge-in)."""
        if self.robot_speaking and not speaking:
            self.robot_quiet_since = time.monotonic()
        self.robot_speaking = bool(speaking)

    def on_push_to_talk(self, on: bool) -> None:
        """Start capturing on true; on false stop, transcribe what was heard and publish it."""
        if on == self.push_to_talk:
            return
        if self.microphone is None and self.source != 'topic':
            log.warning('push-to-talk ignored: no microphone (stt.input is none)')
            self.publish_listening(False)
            return
        self.push_to_talk = on
        if on:
            self._ptt_audio = []
            if self.microphone is not None:
                self.microphone.start()
            self.publish_listening(True)
        else:
            if not self.always_listen and self.microphone is not None:
                self.microphone.stop()
            audio, self._ptt_audio = self._ptt_audio, []
            if audio:
                self._jobs.put(('ptt', np.concatenate(audio), time.monotonic()))
            self.publish_listening(self.always_listen)

    def on_audio_message(self, chunk: AudioChunk) -> None:
        """Take one block from audio/in (any rate and format) as if from the microphone."""
        if self.topic_listening or self.push_to_talk:
            self.on_audio(self._resample(chunk.samples, chunk.rate))

    def on_audio(self, chunk: np.ndarray) -> None:
        """Take 16 kHz microphone audio (PortAudio thread): buffer it, never block."""
        if self.push_to_talk:
            self._ptt_audio.append(chunk)
        elif self.always_listen:
            self._jobs.put(('feed', chunk, time.monotonic()))

    def _on_speech(self, audio: np.ndarray, started: float) -> None:
        self._jobs.put(('utterance', audio, time.monotonic() - len(audio) / STT_RATE))

    # -- work ------------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=self.stream_gap_s if self._streaming else None)
            except queue.Empty:  # the audio stopped coming: what was heard is finished
                self._streaming = False
                self.segmenter.flush()
                continue
            if job is None:
                return
            kind, audio, started = job
            try:
                if kind == 'sync':
                    audio.set()
                elif kind == 'feed':
                    self._streaming = True
                    self.segmenter.feed(audio)
                elif kind == 'ptt':
                    text = ' '.join(u.text for u in self.transcriber.utterances(audio))
                    self.deliver(text, barge=self.robot_speaking)
                else:
                    self.handle_speech(audio, started)
            except Exception as exc:  # one bad utterance must not stop listening
                log.exception('transcription failed: %s', exc)

    def handle_speech(self, audio: np.ndarray, started: float) -> Optional[str]:
        """Apply mute / barge-in to one VAD utterance, transcribe and publish it."""
        speaking = self.robot_speaking
        if self.mode == 'mute' and (speaking or
                                    started < self.robot_quiet_since + self.echo_guard_s):
            log.info('muted: %.1f s of speech while the robot spoke', len(audio) / STT_RATE)
            return None
        text = self.transcriber.transcribe(audio)
        return self.deliver(text, barge=speaking or self.robot_speaking)

    def deliver(self, text: str, barge: bool = False) -> Optional[str]:
        """Publish a transcribed utterance; on a barge-in call the cancel services first."""
        text = text.strip()
        if not text:
            return None
        if barge and self.mode == 'barge_in':
            for service in self.cancel_services:
                try:
                    ok, message = self.transport.call_trigger(service, timeout=2.0)
                    log.info('barge-in: %s -> %s', service, message)
                except KidscareError as exc:
                    log.warning('barge-in: %s', exc)
        log.info('heard: %s', text)
        self.publish_utterance(text)
        self.published += 1
        return text

    def run_file(self, path: str, realtime: bool = False) -> int:
        """Transcribe a WAV file, publish each utterance, return how many were published."""
        if not self.transport.wait_for_subscribers('user_utterance', MSG_STRING,
                                                   self.file_wait_s):
            log.warning('nobody subscribes to user_utterance; publishing anyway')
        audio = load_for_stt(path)
        count = 0
        if realtime:  # as if spoken into the microphone now
            self.transport.wait_for_subscribers('~/listening', MSG_BOOL, 1.0)
            self.publish_listening(True)
            step = STT_RATE // 10
            t0 = time.monotonic()
            for i in range(0, len(audio), step):
                self.segmenter.feed(audio[i:i + step])
                time.sleep(max(0.0, t0 + (i + step) / STT_RATE - time.monotonic()))
            self.segmenter.feed(np.zeros(STT_RATE, np.float32))  # trailing silence ends it
            self.segmenter.flush()
            self._drain()
            self.publish_listening(False)
            count = self.published
        else:
            for utterance in self.transcriber.utterances(audio):
                if self.deliver(utterance.text, barge=self.robot_speaking):
                    count += 1
        time.sleep(0.5)  # let reliable DDS deliver before the process exits
        return count

    def _drain(self) -> None:
        done = threading.Event()
        self._jobs.put(('sync', done, 0.0))
        done.wait(timeout=120)

    def close(self) -> None:
        """Stop the microphone and the worker."""
        if self.microphone is not None:
            self.microphone.stop()
        self._jobs.put(None)
        self._worker.join(timeout=5.0)


def _split_args(argv: List[str]):
    """Separate our own --file/--realtime options from ROS arguments."""
    parser = argparse.ArgumentParser(prog='stt_node', add_help=True)
    parser.add_argument('--file', help='transcribe this WAV file, publish, then exit')
    parser.add_argument('--realtime', action='store_true',
                        help='with --file: play it at speaking pace through the streaming VAD')
    parser.add_argument('--transport', choices=('auto', 'rclpy', 'dds'), default=None)
    ros = []
    if '--ros-args' in argv:
        cut = argv.index('--ros-args')
        argv, ros = argv[:cut], argv[cut:]
    mine, rest = parser.parse_known_args(argv[1:])
    return mine, argv[:1] + rest + ros


def run(argv: List[str], **transport_options) -> int:
    """Run the node: spin, or transcribe --file, publish and exit (3: no speech in it)."""
    options, args = _split_args(list(argv))

    def body(node: SttNode, transport: Transport) -> int:
        if options.file:
            count = node.run_file(options.file, options.realtime)
            log.info('%s: %d utterance(s) published', options.file, count)
            return 0 if count else 3
        node.start_listening()
        transport.spin()
        return 0
    return run_node(STT_NODE, SttNode, options.transport, args, body, **transport_options)


def main(args=None) -> int:
    """Entry point of `ros2 run kidscare_llm stt_node` (Humble and Jazzy) and of stt_node."""
    return run(sys.argv if args is None else args)


if __name__ == '__main__':
    sys.exit(main())
