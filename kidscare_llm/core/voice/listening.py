"""When the STT node listens, and what it does with what it heard: plain decisions, no audio.

The robot hears itself: while /robot_speaking is true, stt.while_speaking picks `mute` (speech
is dropped before it costs a transcription, and so is speech that starts within
stt.echo_guard_ms of the robot falling quiet: the room's echo of its last words) or `barge_in`
(the child talks over the robot: cancel the reply and the speech first, then publish). Push-to-
talk holds audio while the button is down and transcribes it on release; stt.always_listen
streams everything else through the VAD. ListeningPolicy keeps that state and answers each
question with a value the node acts on, so every rule is tested without a model or transport.
"""

from dataclasses import dataclass
import time
from typing import Callable, Optional

MODES = ('mute', 'barge_in')

# where a block of captured audio goes
HOLD = 'hold'  # push-to-talk is down: keep it for the release
STREAM = 'stream'  # always listening: into the streaming VAD
DROP = 'drop'  # not listening

# what becomes of a transcribed utterance
PUBLISH = 'publish'
CANCEL_THEN_PUBLISH = 'cancel_then_publish'  # barge-in: stop the reply and speech first


@dataclass(frozen=True)
class PushToTalkStep:
    """What the node does when the push-to-talk button changes.

    start_capture: forget held audio and open the microphone (a topic needs no opening);
    stop_capture: close the microphone (not when always listening: the stream goes on);
    transcribe_held: transcribe the audio held since the press and deliver it;
    listening: the value to publish on ~/listening, None for nothing;
    refused: there is nothing to capture from, so the press is ignored (and said so).
    """

    start_capture: bool = False
    stop_capture: bool = False
    transcribe_held: bool = False
    listening: Optional[bool] = None
    refused: bool = False


class ListeningPolicy:
    """Mute or barge-in, the echo guard and push-to-talk; times come from `clock` (seconds).

    Callbacks arrive on transport threads and the node's worker reads the state: every field is
    a single value replaced in one assignment, so no lock is needed.
    """

    def __init__(self, mode: str = 'mute', echo_guard_s: float = 0.3,
                 always_listen: bool = True, clock: Callable[[], float] = time.monotonic):
        if mode not in MODES:
            raise ValueError(f'stt.while_speaking {mode!r} unknown; choose one of '
                             f'{", ".join(MODES)}')
        self.mode = mode
        self.echo_guard_s = echo_guard_s
        self.always_listen = always_listen
        self.clock = clock
        self.robot_speaking = False
        self.robot_quiet_since = float('-inf')  # when the robot last stopped speaking
        self.push_to_talk = False
        self.listening = False  # always-listening has started (start() was called)

    def start(self) -> bool:
        """Begin always-listening; return whether to open the input and say ~/listening."""
        self.listening = self.always_listen
        return self.listening

    def robot_speaking_changed(self, speaking: bool) -> None:
        """Note /robot_speaking; the echo guard counts from the moment it turns false."""
        speaking = bool(speaking)
        if self.robot_speaking and not speaking:
            self.robot_quiet_since = self.clock()
        self.robot_speaking = speaking

    def push_to_talk_changed(self, on: bool, can_capture: bool) -> PushToTalkStep:
        """Decide a press (on) or release of push-to-talk; can_capture: a microphone or topic."""
        on = bool(on)
        if on == self.push_to_talk:
            return PushToTalkStep()
        if not can_capture:
            return PushToTalkStep(listening=False, refused=True)
        self.push_to_talk = on
        if on:
            return PushToTalkStep(start_capture=True, listening=True)
        return PushToTalkStep(stop_capture=not self.always_listen, transcribe_held=True,
                              listening=self.always_listen)

    def route(self, gated: bool = False) -> str:
        """Return where a block of captured audio goes: HOLD, STREAM or DROP.

        gated: the block comes from an input that is taken in only after start() (an audio
        topic keeps flowing whether or not this node listens; a microphone is opened only
        when it should be heard).
        """
        if self.push_to_talk:
            return HOLD
        if gated and not self.listening:
            return DROP
        return STREAM if self.always_listen else DROP

    def admit(self, started: float) -> bool:
        """Whether a VAD utterance that began at `started` (clock time) is worth transcribing.

        Muted: not while the robot speaks, nor within the echo guard after it stopped.
        """
        if self.mode != 'mute':
            return True
        return not (self.robot_speaking or started < self.robot_quiet_since + self.echo_guard_s)

    def verdict(self, text: str, spoke_during: bool = False) -> str:
        """Return DROP, PUBLISH or CANCEL_THEN_PUBLISH for a transcribed utterance.

        spoke_during: the robot was speaking when the utterance was admitted; it counts as a
        barge-in as well when the robot is speaking now. Empty text is dropped; push-to-talk
        and files are never muted, only barge in.
        """
        if not text.strip():
            return DROP
        if self.mode == 'barge_in' and (spoke_during or self.robot_speaking):
            return CANCEL_THEN_PUBLISH
        return PUBLISH
