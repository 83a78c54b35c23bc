"""ListeningPolicy: mute, barge-in, the echo guard and push-to-talk, on a hand-turned clock."""

import pytest

from kidscare_llm.core.voice.listening import (CANCEL_THEN_PUBLISH, DROP, HOLD, ListeningPolicy,
                                               PUBLISH, PushToTalkStep, STREAM)


class Clock:
    """A clock the test moves by hand (seconds)."""

    def __init__(self, now=100.0):
        self.now = now

    def __call__(self):
        return self.now


def policy(mode='mute', guard=0.3, always=True):
    """A policy on its own clock; returns (policy, clock)."""
    clock = Clock()
    return ListeningPolicy(mode, guard, always, clock), clock


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match='shout'):
        ListeningPolicy('shout')


def test_mute_drops_speech_while_the_robot_speaks_and_within_the_echo_guard():
    p, clock = policy('mute', guard=0.3)
    assert p.admit(clock.now - 1.0)  # nobody spoke yet: no guard at start-up
    p.robot_speaking_changed(True)
    assert not p.admit(clock.now)
    clock.now += 5.0
    p.robot_speaking_changed(False)  # quiet from 105.0
    assert not p.admit(105.0)  # the room's echo of the last words
    assert not p.admit(105.29)
    assert p.admit(105.3)
    assert not p.admit(104.0)  # started while the robot still spoke
    assert p.verdict('hello') == PUBLISH


def test_the_echo_guard_counts_from_the_moment_the_robot_falls_quiet():
    p, clock = policy('mute', guard=0.3)
    p.robot_speaking_changed(False)  # was not speaking: no new quiet moment
    assert p.admit(clock.now)
    p.robot_speaking_changed(True)
    clock.now = 200.0
    p.robot_speaking_changed(False)
    clock.now = 300.0
    p.robot_speaking_changed(False)  # repeated false: the guard stays at 200
    assert p.admit(200.3) and not p.admit(200.2)


def test_a_zero_guard_admits_speech_right_after_the_robot():
    p, clock = policy('mute', guard=0.0)
    p.robot_speaking_changed(True)
    p.robot_speaking_changed(False)
    assert p.admit(clock.now)


def test_barge_in_admits_everything_and_cancels_when_the_robot_spoke():
    p, clock = policy('barge_in')
    p.robot_speaking_changed(True)
    assert p.admit(clock.now)
    assert p.verdict('stop please', spoke_during=True) == CANCEL_THEN_PUBLISH
    p.robot_speaking_changed(False)
    assert p.admit(clock.now)  # no echo guard in barge-in mode
    # the robot stopped while the words were transcribed: still a barge-in
    assert p.verdict('stop please', spoke_during=True) == CANCEL_THEN_PUBLISH
    assert p.verdict('stop please') == PUBLISH
    # the robot began speaking during the transcription: stop it too
    p.robot_speaking_changed(True)
    assert p.verdict('stop please') == CANCEL_THEN_PUBLISH


def test_mute_never_cancels_and_empty_text_is_dropped():
    p, _ = policy('mute')
    p.robot_speaking_changed(True)
    assert p.verdict('words', spoke_during=True) == PUBLISH  # push-to-talk is not muted
    for mode in ('mute', 'barge_in'):
        q, _ = policy(mode)
        q.robot_speaking_changed(True)
        assert q.verdict('  ') == DROP and q.verdict('') == DROP


def test_audio_is_streamed_only_once_always_listening_started():
    p, _ = policy(always=True)
    assert p.route() == STREAM  # a microphone is opened only when it should be heard
    assert p.route(gated=True) == DROP  # an audio topic flows before start(): not taken in
    assert p.start()
    assert p.route(gated=True) == STREAM
    q, _ = policy(always=False)
    assert not q.start()
    assert q.route() == DROP and q.route(gated=True) == DROP


def test_push_to_talk_holds_audio_then_transcribes_it_once():
    p, _ = policy(always=False)
    assert p.push_to_talk_changed(True, can_capture=True) == \
        PushToTalkStep(start_capture=True, listening=True)
    assert p.route() == HOLD and p.route(gated=True) == HOLD
    assert p.push_to_talk_changed(True, can_capture=True) == PushToTalkStep()  # repeated
    assert p.push_to_talk_changed(False, can_capture=True) == \
        PushToTalkStep(stop_capture=True, transcribe_held=True, listening=False)
    assert p.route() == DROP
    assert p.push_to_talk_changed(False, can_capture=True) == PushToTalkStep()


def test_push_to_talk_while_always_listening_keeps_the_input_open():
    p, _ = policy(always=True)
    p.start()
    p.push_to_talk_changed(True, can_capture=True)
    assert p.route(gated=True) == HOLD
    step = p.push_to_talk_changed(False, can_capture=True)
    assert step == PushToTalkStep(transcribe_held=True, listening=True)
    assert p.route(gated=True) == STREAM


def test_push_to_talk_without_an_input_is_refused_and_said_so():
    p, _ = policy(always=False)
    step = p.push_to_talk_changed(True, can_capture=False)
    assert step.refused and step.listening is False and not step.start_capture
    assert not p.push_to_talk and p.route() == DROP
    assert p.push_to_talk_changed(False, can_capture=False) == PushToTalkStep()
