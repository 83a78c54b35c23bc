"""STT node: microphone, audio topic or WAV file -> VAD -> faster-whisper -> /user_utterance.

Topics: pub user_utterance (each finished utterance), ~/listening (Bool, capture state);
sub robot_speaking (Bool), ~/push_to_talk (Bool: true starts capturing, false transcribes),
audio/in (audio_common_msgs/AudioStamped, with stt.input topic).
While the robot speaks, stt.while_speaking picks mute (ignore) or barge_in (call
stt.cancel_services, e.g. /chat_node/cancel and /tts_node/stop, then publish); those rules,
the echo guard and push-to-talk are core/voice/listening.py's ListeningPolicy.
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

from kidscare_llm.core.build import build_transcriber, vad_settings
from kidscare_llm.core.errors import KidscareError
from kidscare_llm.core.settings import STT_NODE
from kidscare_llm.core.voice.audio import (AudioChunk, has_device, load_for_stt, StreamResampler,
                                           STT_RATE)
from kidscare_llm.core.voice.listening import (CANCEL_THEN_PUBLISH, DROP, HOLD, ListeningPolicy,
                                               STREAM)
from kidscare_llm.core.voice.stt import Microphone, Segmenter, Transcriber
from kidscare_llm.nodes.runner import run_node
from kidscare_llm.transport import MSG_AUDIO, MSG_BOOL, MSG_STRING, Transport

log = logging.getLogger('kidscare_llm.stt_node')
STREAM_STALL_S = 1.0  # how long a topic's audio may stall mid-speech


class SttNode:
    """Wires a Transcriber and a ListeningPolicy to topics; one worker thread transcribes."""

    def __init__(self, transport: Transport,
                 transcriber_factory: Callable[[dict], Transcriber] = build_transcriber):
        self.transport = transport
        params = transport.parameters(STT_NODE)
        self.policy = ListeningPolicy(params['stt.while_speaking'],
                                      params['stt.echo_guard_ms'] / 1000.0,
                                      params['stt.always_listen'])
        self.cancel_services = [s.strip() for s in params['stt.cancel_services'].split(',')
                                if s.strip()]
        self.file_wait_s = params['stt.file_wait_s']
        self.transcriber = transcriber_factory(params)
        self.published = 0
        self._ptt_audio: List[np.ndarray] = []
        self._jobs: queue.Queue = queue.Queue()
        # An audio topic just stops when its speaker does: no trailing silence ends the last
        # utterance, so a stream quiet for longer than the VAD's silence counts as ended. The
        # margin is for delivery, not speech: on a busy CPU (an LLM and TTS beside us) a burst
        # of audio blocks stalled 0.8 s and cut "The little lion. | likes to eat ..." in two.
        self.stream_gap_s = params['vad.min_silence_ms'] / 1000.0 + STREAM_STALL_S
        self._streaming = False
        self.segmenter = Segmenter(self._on_speech, vad_settings(params))
        self.publish_utterance = transport.publisher('user_utterance', MSG_STRING)
        self.publish_listening = transport.publisher('~/listening', MSG_BOOL)
        transport.subscribe('robot_speaking', MSG_BOOL, self.policy.robot_speaking_changed)
        transport.subscribe('~/push_to_talk', MSG_BOOL, self.on_push_to_talk)
        self.microphone: Optional[Microphone] = None
        source = params['stt.input']
        if source == 'auto':
            source = 'microphone' if has_device('input') else 'none'
        if source == 'microphone':
            self.microphone = Microphone(self.on_audio)
        self.source = source
        if source == 'topic':
            self._resample = StreamResampler(STT_RATE)
            transport.subscribe('audio/in', MSG_AUDIO, self.on_audio_message, depth=100)
        self._worker = threading.Thread(target=self._work, name='stt-worker', daemon=True)
        self._worker.start()
        log.info('stt node ready: %s; input %s; while the robot speaks: %s',
                 self.transcriber.describe(), source, self.policy.mode)

    def start_listening(self) -> None:
        """Open the microphone (or take in audio/in) when always_listen is on."""
        if not self.policy.start():
            return
        if self.microphone is not None:
            self.microphone.start()
            self.publish_listening(True)
        elif self.source == 'topic':
            self.publish_listening(True)

    # -- inputs ----------------------------------------------------------------------------
    def on_push_to_talk(self, on: bool) -> None:
        """Start capturing on true; on false stop, transcribe what was heard and publish it."""
        step = self.policy.push_to_talk_changed(
            on, can_capture=self.microphone is not None or self.source == 'topic')
        if step.refused:
            log.warning('push-to-talk ignored: no microphone (stt.input is none)')
        if step.start_capture:
            self._ptt_audio = []
            if self.microphone is not None:
                self.microphone.start()
        if step.stop_capture and self.microphone is not None:
            self.microphone.stop()
        if step.transcribe_held:
            audio, self._ptt_audio = self._ptt_audio, []
            if audio:
                self._jobs.put(('ptt', np.concatenate(audio), 0.0))
        if step.listening is not None:
            self.publish_listening(step.listening)

    def on_audio_message(self, chunk: AudioChunk) -> None:
        """Take one block from audio/in (any rate and format) as if from the microphone."""
        if self.policy.route(gated=True) != DROP:
            self.on_audio(self._resample(chunk.samples, chunk.rate))

    def on_audio(self, chunk: np.ndarray) -> None:
        """Take 16 kHz microphone audio (PortAudio thread): buffer it, never block."""
        route = self.policy.route()
        if route == HOLD:
            self._ptt_audio.append(chunk)
        elif route == STREAM:
            self._jobs.put(('feed', chunk, 0.0))

    def _on_speech(self, audio: np.ndarray, started: float) -> None:
        self._jobs.put(('utterance', audio, self.policy.clock() - len(audio) / STT_RATE))

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
                    self.deliver(' '.join(u.text for u in self.transcriber.utterances(audio)))
                else:
                    self.handle_speech(audio, started)
            except Exception as exc:  # one bad utterance must not stop listening
                log.exception('transcription failed: %s', exc)

    def handle_speech(self, audio: np.ndarray, started: float) -> Optional[str]:
        """Apply mute / barge-in to one VAD utterance, transcribe and publish it."""
        speaking = self.policy.robot_speaking
        if not self.policy.admit(started):
            log.info('muted: %.1f s of speech while the robot spoke', len(audio) / STT_RATE)
            return None
        return self.deliver(self.transcriber.transcribe(audio), spoke_during=speaking)

    def deliver(self, text: str, spoke_during: bool = False) -> Optional[str]:
        """Publish a transcribed utterance; on a barge-in call the cancel services first."""
        text = text.strip()
        verdict = self.policy.verdict(text, spoke_during)
        if verdict == DROP:
            return None
        if verdict == CANCEL_THEN_PUBLISH:
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
                if self.deliver(utterance.text):
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
