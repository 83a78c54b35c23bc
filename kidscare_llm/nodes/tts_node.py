"""TTS node: /robot_reply_partial sentences -> piper or espeak-ng -> sound card, WAV or topic.

Topics: sub robot_reply_partial (each sentence, spoken in order as it arrives), robot_reply
(end of a reply); pub robot_speaking (Bool: true when audio starts, false when the queue is
drained or stopped; true is repeated every second while speaking so late joiners learn it),
~/spoken (String JSON per sentence: text, wav, engine, received/start/end times, stopped),
~/stopped (String JSON per stop: stopped_ms, the measured stop latency, and sentences dropped),
audio/out (audio_common_msgs/AudioStamped in 20 ms blocks, paced in real time, with tts.output
topic: remap it to an audio player's input).
Service ~/stop (Trigger): halt within one 20 ms block and drop queued sentences; its message
is the same JSON report. After a stop in the middle of a reply, the rest of
that reply's sentences (until its /robot_reply) are not spoken.
"""

import argparse
import json
import logging
import sys
import threading
from typing import Optional

from kidscare_llm.core.build import build_speaker
from kidscare_llm.core.settings import TTS_NODE
from kidscare_llm.nodes.runner import run_node
from kidscare_llm.transport import MSG_AUDIO, MSG_BOOL, MSG_STRING, Transport

log = logging.getLogger('kidscare_llm.tts_node')
HEARTBEAT_S = 1.0


class TtsNode:
    """Wires a Speaker to topics and the ~/stop service."""

    def __init__(self, transport: Transport, speaker_factory=build_speaker):
        self.transport = transport
        params = transport.parameters(TTS_NODE)
        self.publish_speaking = transport.publisher('robot_speaking', MSG_BOOL)
        self.publish_spoken = transport.publisher('~/spoken', MSG_STRING)
        self.publish_stopped = transport.publisher('~/stopped', MSG_STRING)
        sink = None
        if params['tts.output'] == 'topic':
            sink = transport.publisher('audio/out', MSG_AUDIO, depth=100)
        self.speaker = speaker_factory(params, self.on_speaking, self.on_spoken, sink)
        self.synth = self.speaker.synth
        first = 'piper' if params['tts.engine'] == 'auto' else params['tts.engine']
        self.synth.load(first)  # fail at start-up, not at the first sentence
        self.in_reply = False  # partials seen since the last /robot_reply
        self.dropping = False  # stopped mid-reply: skip the rest of it
        self.speaking = False
        self._lock = threading.Lock()  # a heartbeat never overtakes a 'false'
        self._stop = threading.Event()
        transport.subscribe('robot_reply_partial', MSG_STRING, self.on_sentence)
        transport.subscribe('robot_reply', MSG_STRING, self.on_reply)
        transport.serve_trigger('~/stop', self.on_stop)
        transport.on_parameter_change(self.on_parameters)
        self._beat = threading.Thread(target=self._heartbeat, name='tts-heartbeat', daemon=True)
        self._beat.start()
        log.info('tts node ready: engine %s (%s loaded; espeak-ng voice %s); output %s',
                 params['tts.engine'], first, params['tts.espeak_voice'], self.speaker.output)

    def on_sentence(self, text: str) -> None:
        """Queue one sentence of the reply being generated."""
        self.in_reply = True
        if self.dropping:
            log.info('dropped (stopped reply): %.40r', text)
            return
        self.speaker.say(text)

    def on_reply(self, text: str) -> None:
        """Note that a reply is complete: the next sentences belong to a new one."""
        self.in_reply = False
        self.dropping = False

    def on_parameters(self, changes: dict) -> None:
        """Apply a new speaking pace (ros2 param set) from the next synthesised sentence on."""
        self.synth.set_pace(changes.get('tts.length_scale'), changes.get('tts.espeak_wpm'))
        log.info('speaking pace: length_scale %s, espeak-ng %s wpm', self.synth.length_scale,
                 self.synth.espeak_wpm)

    def on_stop(self):
        """Stop speaking now and drop the queue; report the latency as JSON."""
        report = self.speaker.stop()
        self.dropping = self.in_reply
        log.info('stopped in %.1f ms, %d sentence(s) dropped', report['stopped_ms'],
                 report['dropped'])
        self.publish_stopped(json.dumps(report))
        return True, json.dumps(report)

    def on_speaking(self, on: bool) -> None:
        """Publish /robot_speaking on every change."""
        with self._lock:
            self.speaking = on
            self.publish_speaking(on)

    def on_spoken(self, info: dict) -> None:
        """Publish one ~/spoken report per sentence."""
        self.publish_spoken(json.dumps(info, ensure_ascii=False))

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            with self._lock:
                if self.speaking:
                    self.publish_speaking(True)

    def close(self) -> None:
        """Stop speaking and the worker threads."""
        self._stop.set()
        self.speaker.close()


def run(transport_name: Optional[str] = None, args=(), **transport_options) -> int:
    """Run the TTS node until Ctrl-C; 1 with one clear line on a configuration error."""
    return run_node(TTS_NODE, TtsNode, transport_name, args, **transport_options)


def main(args=None) -> int:
    """Entry point of `ros2 run kidscare_llm tts_node` (Humble and Jazzy) and of tts_node."""
    argv = list(sys.argv if args is None else args)
    ros = argv.index('--ros-args') if '--ros-args' in argv else len(argv)
    parser = argparse.ArgumentParser(prog='tts_node')
    parser.add_argument('--transport', choices=('auto', 'rclpy', 'dds'), default=None,
                        help='auto (default): rclpy when importable, else plain DDS')
    options, rest = parser.parse_known_args(argv[1:ros])
    return run(options.transport, args=argv[:1] + rest + argv[ros:])


if __name__ == '__main__':
    sys.exit(main())
