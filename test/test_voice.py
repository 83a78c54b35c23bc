"""Voice: piper/espeak-ng speech through the STT node, and the TTS node fed by the chat node.

Real models (embedded whisper-base, the joe piper voice, espeak-ng, the packaged GGUF), real
WAV files under tmp_path and real DDS between node processes; fakes only in the logic tests.
"""

import ast
import json
import os
from pathlib import Path
import queue
import re
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import BIN, ROOT
from kidscare_llm.core.voice import stt as stt_core
from kidscare_llm.core.voice.audio import (AudioChunk, decode_pcm, load_for_stt, PA_FLOAT32,
                                           PA_INT16, PA_INT32, PA_INT8, PA_UINT8, read_wav,
                                           StreamResampler, STT_RATE, VoiceError, write_wav)
from kidscare_llm.core.voice.tts import EspeakEngine, PiperEngine, Player, Speaker, Synthesizer
from kidscare_llm.transport import KEEP_ALL, MSG_AUDIO, MSG_BOOL, MSG_STRING
from kidscare_llm.transport.dds import DdsTransport
from ros2_wire import Peer

pytestmark = pytest.mark.slow
ENGLISH = 'The little lion likes to eat red apples in the garden.'
KOREAN = '안녕하세요. 오늘은 날씨가 정말 좋아요.'
PY = sys.executable


def words(text):
    """Lower-case words without punctuation."""
    return re.findall(r"[a-z']+", text.lower())


def padded(audio, rate, before=0.5, after=0.8):
    """Audio with silence around it, as a microphone would record it."""
    return np.concatenate([np.zeros(int(before * rate), np.float32), audio,
                           np.zeros(int(after * rate), np.float32)])


@pytest.fixture(scope='module')
def voice_dir(tmp_path_factory):
    """One data dir (whisper assembled once) and the test WAVs made by the real voices."""
    root = tmp_path_factory.mktemp('voice')
    piper = PiperEngine()
    audio, rate = piper.synthesize(ENGLISH)
    write_wav(root / 'en.wav', padded(audio, rate), rate)
    two = np.concatenate([padded(audio, rate, 0.3, 1.5), padded(audio, rate, 0.0, 1.0)])
    write_wav(root / 'en_twice.wav', two, rate)
    audio, rate = EspeakEngine('ko').synthesize(KOREAN)
    write_wav(root / 'ko.wav', padded(audio, rate), rate)
    return root


class Probe:
    """One DDS participant for the module that records Bool and String topics by name."""

    def __init__(self):
        self.transport = DdsTransport('voice_probe')
        self.got = {}

    def watch(self, topic, msg_type, parse=None):
        """Start recording a topic (once); return its queue of (wall time, value)."""
        if topic not in self.got:
            q = self.got[topic] = queue.Queue()
            self.transport.subscribe(topic, msg_type,
                                     lambda v: q.put((time.time(), parse(v) if parse else v)))
        return self.got[topic]


@pytest.fixture(scope='module')
def probe():
    """The module's listening participant (shut down after the module: no listener outlives it)."""
    p = Probe()
    yield p
    p.transport.shutdown()


@pytest.fixture(scope='module')
def peer():
    """The module's independent ROS 2-wire peer (String topics)."""
    return Peer(int(os.environ['ROS_DOMAIN_ID']))


def drain(q):
    """Return every value queued so far (without times)."""
    out = []
    while not q.empty():
        out.append(q.get()[1])
    return out


def node_env(voice_dir):
    """Environment for node processes: shared data dir, unbuffered logs."""
    return dict(os.environ, KIDSCARE_DATA_DIR=str(voice_dir / 'data'), PYTHONUNBUFFERED='1')


def start(voice_dir, name, cmd):
    """Start a node process with its output in <name>.log."""
    with (voice_dir / f'{name}.log').open('ab') as out:
        return subprocess.Popen(cmd, env=node_env(voice_dir), stdout=out,
                                stderr=subprocess.STDOUT)


def stop(proc):
    """Terminate a node process and wait for it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def stt_file(voice_dir, wav, *params, name='stt'):
    """Start `stt_node --file wav` over DDS."""
    cmd = [str(BIN / 'stt_node'), '--file', str(wav), '--transport', 'dds', '--ros-args']
    for p in params:
        cmd += ['-p', p]
    return start(voice_dir, name, cmd)


def utterances_of(peer, proc, timeout):
    """Collect /user_utterance until the STT process exits; return (texts, seconds)."""
    t0 = time.monotonic()
    got = []
    while time.monotonic() - t0 < timeout:
        got += peer.take('/user_utterance')
        if proc.poll() is not None:
            time.sleep(0.2)
            got += peer.take('/user_utterance')
            return got, time.monotonic() - t0
        time.sleep(0.05)
    stop(proc)
    return got, time.monotonic() - t0


def test_piper_speech_round_trip_through_the_stt_node(voice_dir, peer):
    peer.take('/user_utterance')
    proc = stt_file(voice_dir, voice_dir / 'en.wav', 'stt.language:=en')
    got, _ = utterances_of(peer, proc, 120)
    log = (voice_dir / 'stt.log').read_text()
    assert proc.returncode == 0, log[-2000:]
    assert len(got) == 1, got
    heard, said = words(got[0]), words(ENGLISH)
    assert sum(w in heard for w in said) >= 0.8 * len(said), (got, said)
    assert (voice_dir / 'data' / 'models' / 'whisper-base-ct2' / 'model.bin').is_file()
    assert 'whisper-base-ct2 (embedded) on cpu/int8' in log


def test_korean_espeak_speech_gives_an_utterance_in_bounded_time(voice_dir, peer):
    peer.take('/user_utterance')
    proc = stt_file(voice_dir, voice_dir / 'ko.wav', name='stt_ko')  # default language: ko
    got, took = utterances_of(peer, proc, 90)
    assert proc.returncode == 0, (voice_dir / 'stt_ko.log').read_text()[-2000:]
    assert got and all(t.strip() for t in got)
    assert re.search('[\uac00-\ud7a3]', ' '.join(got)), got  # whisper wrote Hangul
    assert took < 60


def test_realtime_file_goes_through_the_streaming_path(voice_dir, peer, probe):
    """--realtime: the WAV is fed at speaking pace, as a microphone would; ~/listening."""
    peer.take('/user_utterance')
    listening = probe.watch('/stt_node/listening', MSG_BOOL)
    drain(listening)
    cmd = [str(BIN / 'stt_node'), '--file', str(voice_dir / 'en_twice.wav'), '--realtime',
           '--transport', 'dds', '--ros-args', '-p', 'stt.language:=en']
    t0 = time.monotonic()
    proc = start(voice_dir, 'stt_rt', cmd)
    got, _ = utterances_of(peer, proc, 120)
    assert proc.returncode == 0, (voice_dir / 'stt_rt.log').read_text()[-2000:]
    assert time.monotonic() - t0 > read_wav(voice_dir / 'en_twice.wav')[0].size / 22050
    assert len(got) == 2 and all(words(g)[:3] == ['the', 'little', 'lion'] for g in got)
    assert drain(listening) == [True, False]


def test_speech_over_audio_topics_between_the_nodes(voice_dir, peer, probe):
    """TTS (tts.output topic) -> AudioStamped over DDS -> STT (stt.input topic) -> words."""
    audio_q = probe.watch('/voice_audio', MSG_AUDIO)
    drain(audio_q)
    peer.take('/user_utterance')
    stt = start(voice_dir, 'stt_topic', [
        str(BIN / 'stt_node'), '--transport', 'dds', '--ros-args', '-p', 'stt.input:=topic',
        '-p', 'stt.language:=en', '-r', 'audio/in:=/voice_audio',
        '-r', 'robot_speaking:=/voice_test_quiet'])  # not muted by its own robot's voice
    tts = start(voice_dir, 'tts_topic', [
        str(BIN / 'tts_node'), '--transport', 'dds', '--ros-args', '-p', 'tts.output:=topic',
        '-r', 'audio/out:=/voice_audio', '-r', 'robot_reply_partial:=/voice_test_say',
        '-r', 'robot_reply:=/voice_test_said'])
    try:
        assert probe.transport.wait_for_publishers('/voice_audio', MSG_AUDIO, 90), \
            (voice_dir / 'tts_topic.log').read_text()[-2000:]
        assert peer.wait_matched(writes=['/voice_test_say'], reads=['/user_utterance'],
                                 timeout=90), (voice_dir / 'stt_topic.log').read_text()[-2000:]
        time.sleep(0.5)
        peer.publish('/voice_test_say', ENGLISH)
        got, deadline = [], time.monotonic() + 90
        while not got and time.monotonic() < deadline:
            got = peer.take('/user_utterance')
            time.sleep(0.1)
        assert len(got) == 1, (voice_dir / 'stt_topic.log').read_text()[-2000:]
        heard, said = words(got[0]), words(ENGLISH)
        assert sum(w in heard for w in said) >= 0.8 * len(said), (got, said)
        blocks = []
        while not audio_q.empty():
            blocks.append(audio_q.get())
        rates = {chunk.rate for _, chunk in blocks}
        seconds = sum(len(chunk.samples) for _, chunk in blocks) / 22050
        assert rates == {22050} and seconds > 1.5, (rates, seconds)
        assert all(len(chunk.samples) <= 441 for _, chunk in blocks)  # 20 ms blocks
        # paced as it would play: the blocks span about as long as the audio lasts
        assert blocks[-1][0] - blocks[0][0] > 0.8 * seconds
    finally:
        stop(tts)
        stop(stt)


def test_audio_messages_of_every_sample_format_decode_alike():
    """AudioStamped may carry float32, int32, int16, int8 or uint8, mono or interleaved."""
    wave = np.sin(np.linspace(0, 20, 400)).astype(np.float32) * 0.9

    class Data:
        float32_data, int32_data, int16_data, int8_data, uint8_data = [], [], [], [], []
    for fmt, field, scale, offset in [(PA_FLOAT32, 'float32_data', 1, 0),
                                      (PA_INT32, 'int32_data', 2 ** 31 - 1, 0),
                                      (PA_INT16, 'int16_data', 32767, 0),
                                      (PA_INT8, 'int8_data', 127, 0),
                                      (PA_UINT8, 'uint8_data', 127, 128)]:
        data = Data()
        samples = wave * scale + offset if fmt == PA_FLOAT32 else np.round(wave * scale + offset)
        setattr(data, field, list(samples))
        assert np.abs(decode_pcm(fmt, 1, data) - wave).max() < 0.02, fmt
        setattr(data, field, list(np.repeat(samples, 2)))  # stereo, interleaved
        assert np.abs(decode_pcm(fmt, 2, data) - wave).max() < 0.02, fmt
    with pytest.raises(VoiceError, match='format 3'):
        decode_pcm(3, 1, Data())


def test_stream_resampler_is_seamless_across_blocks():
    """Blocks resampled one by one join up as the whole signal resampled at once would."""
    t = np.arange(22050 * 2) / 22050
    tone = np.sin(2 * np.pi * 220 * t).astype(np.float32)
    resampler = StreamResampler(STT_RATE)
    out = np.concatenate([resampler(tone[i:i + 441], 22050) for i in range(0, len(tone), 441)])
    assert abs(len(out) - 2 * STT_RATE) <= 1
    expected = np.sin(2 * np.pi * 220 * np.arange(len(out)) / STT_RATE)
    assert np.abs(out - expected).max() < 0.01  # no click at any of the 100 block edges
    same = StreamResampler(STT_RATE)
    assert same(tone[:1600], STT_RATE) is not None and len(same(tone[:1600], STT_RATE)) == 1600


def test_streaming_vad_cuts_utterances_at_silences(voice_dir):
    """The microphone path: 100 ms chunks through Segmenter, real Silero VAD."""
    audio = load_for_stt(voice_dir / 'en_twice.wav')
    found = []
    seg = stt_core.Segmenter(lambda a, t: found.append(len(a) / STT_RATE),
                             stt_core.VadSettings(min_silence_ms=600))
    for i in range(0, len(audio), STT_RATE // 10):
        seg.feed(audio[i:i + STT_RATE // 10])
    assert len(found) == 2, found  # both emitted while streaming, before any flush
    assert all(2.0 < d < 4.5 for d in found), found
    seg.flush()
    assert len(found) == 2


def test_embedded_model_checksum_is_enforced(tmp_path, monkeypatch):
    folder = stt_core.packaged_whisper_model(tmp_path, progress=False)
    assert (folder / 'model.bin').stat().st_size == 145217532
    monkeypatch.setattr(stt_core, 'PACKAGED_SHA256', '0' * 64)
    with pytest.raises(VoiceError, match='corrupt'):
        stt_core.packaged_whisper_model(tmp_path / 'again', progress=False)
    assert not (tmp_path / 'again' / stt_core.PACKAGED_NAME / 'model.bin').exists()
    assert not (tmp_path / 'again' / stt_core.PACKAGED_NAME / 'model.bin.partial').exists()


def test_english_only_models_are_refused(tmp_path):
    for name in ('base.en', 'distil-large-v3'):
        with pytest.raises(VoiceError, match='translates'):
            stt_core.resolve_whisper_model(name, tmp_path)


@pytest.mark.parametrize('cmd, message', [
    (['stt_node', '--file', '/nonexistent/x.wav'], 'audio file not found: /nonexistent/x.wav'),
    (['stt_node', '--ros-args', '-p', 'stt.while_speaking:=shout'], 'stt.while_speaking'),
    (['tts_node', '--ros-args', '-p', 'tts.piper_voice:=/nonexistent/v.onnx'],
     'piper voice not found: /nonexistent/v.onnx'),
])
def test_startup_errors_are_one_clear_line(cmd, message, voice_dir):
    proc = subprocess.run([str(BIN / cmd[0]), '--transport', 'dds', *cmd[1:]],
                          env=node_env(voice_dir), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert message in proc.stderr and 'Traceback' not in proc.stderr


def test_sound_output_without_a_sound_card_is_refused_at_start_up(voice_dir):
    from kidscare_llm.core.voice.audio import has_device
    if has_device('output'):
        pytest.skip('this machine has a sound card')
    proc = subprocess.run([str(BIN / 'tts_node'), '--transport', 'dds', '--ros-args', '-p',
                           'tts.output:=sound'], env=node_env(voice_dir), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 1
    assert 'PortAudio sees no output device; set tts.output to wav' in proc.stderr


class _SlowSynth:
    """Fake engine for the Speaker's ordering logic: 50 ms of audio per sentence."""

    def __init__(self):
        self.engine = 'fake'

    def synthesize(self, text):
        time.sleep(0.01 * (len(text) % 3))  # uneven synthesis time must not reorder
        return np.full(800, 0.1, np.float32), 16000, 'fake'


def test_speaker_keeps_order_never_overlaps_and_stops_fast():
    spoken, speaking = [], []
    speaker = Speaker(_SlowSynth(), Player(sound_card=False), None, speaking.append,
                      spoken.append)
    for i in range(6):
        speaker.say(f'sentence {i}' + '.' * i)
    deadline = time.monotonic() + 10
    while len(spoken) < 6 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [s['text'] for s in spoken] == [f'sentence {i}' + '.' * i for i in range(6)]
    assert all(a['end'] <= b['start'] for a, b in zip(spoken, spoken[1:]))
    assert speaking == [True, False]
    speaker.say('a long one')
    speaker.say('dropped')
    time.sleep(0.02)
    report = speaker.stop()
    assert report['stopped_ms'] < 100 and report['dropped'] == 2
    time.sleep(0.3)
    assert spoken[-1]['text'] == 'a long one' and spoken[-1]['stopped']
    speaker.close()


class _FakeTransport:
    """Records what the STT node publishes and which services it calls."""

    def __init__(self, params):
        self.params, self.sent, self.calls = params, [], []

    def parameters(self, node):
        from kidscare_llm.core import settings
        return settings.load(node, [], self.params)

    def publisher(self, topic, msg_type):
        return lambda value: self.sent.append((topic, value))

    def subscribe(self, topic, msg_type, callback):
        pass

    def call_trigger(self, service, timeout=10.0):
        self.calls.append(service)
        return True, 'ok'


class _FakeTranscriber:
    def transcribe(self, audio):
        return 'stop please'

    def utterances(self, audio):
        return [stt_core.Utterance('stop please', 0.0, len(audio) / STT_RATE)]

    def describe(self):
        return 'fake'


@pytest.mark.parametrize('mode, published, calls', [
    ('mute', [], []),
    ('barge_in', ['stop please'], ['/chat_node/cancel', '/tts_node/stop']),
])
def test_stt_node_mutes_or_barges_in_while_the_robot_speaks(mode, published, calls):
    from kidscare_llm.nodes.stt_node import SttNode
    transport = _FakeTransport({'stt.while_speaking': mode, 'stt.input': 'none'})
    node = SttNode(transport, lambda params: _FakeTranscriber())
    try:
        node.policy.robot_speaking_changed(True)  # what /robot_speaking is wired to
        node.handle_speech(np.zeros(STT_RATE, np.float32), time.monotonic())
        assert [v for t, v in transport.sent if t == 'user_utterance'] == published
        assert transport.calls == calls
        node.policy.robot_speaking_changed(False)
        quiet = node.policy.robot_quiet_since  # past the echo guard: heard, no barge-in
        node.handle_speech(np.zeros(STT_RATE, np.float32), quiet + 0.35)
        assert [v for t, v in transport.sent if t == 'user_utterance'][-1] == 'stop please'
        assert transport.calls == calls
    finally:
        node.close()


# -- the three nodes together over DDS ------------------------------------------------------
CHAT = ['-p', 'llm.temperature=0', '-p', 'llm.max_tokens=1500', '-p', 'rag.enabled=false',
        '-p', 'model.download=false']
STORY = 'Tell me a very long story about a lion and a rabbit.'


def db_messages(data, session):
    """(role, content, interrupted) of one session's turns."""
    with sqlite3.connect(data / 'sessions.sqlite3') as db:
        return db.execute('SELECT role, content, interrupted FROM messages WHERE session_id = ? '
                          'ORDER BY id', (session,)).fetchall()


def test_streamed_speech_order_and_barge_in_over_dds(voice_dir, peer, probe):
    wav_dir = voice_dir / 'tts_out'
    chat = start(voice_dir, 'chat', [str(BIN / 'kidscare-llm'), 'node', '--transport', 'dds',
                                     *CHAT])
    tts = start(voice_dir, 'tts', [PY, '-m', 'kidscare_llm.nodes.tts_node', '--transport',
                                   'dds', '--ros-args', '-p', 'tts.output:=wav',
                                   '-p', f'tts.wav_dir:={wav_dir}',
                                   # slow speech: still talking when the barge-in comes, even
                                   # if a busy CPU slows generation below speaking pace
                                   '-p', 'tts.length_scale:=3.0'])
    # the child's microphone is an audio topic: the STT node is loaded and listening before
    # the story starts, so the barge-in races nothing but the reply itself
    stt = start(voice_dir, 'stt_barge', [
        str(BIN / 'stt_node'), '--transport', 'dds', '--ros-args', '-p', 'stt.input:=topic',
        '-p', 'stt.language:=en', '-p', 'stt.while_speaking:=barge_in',
        '-r', 'audio/in:=/voice_mic'])
    microphone = probe.transport.publisher('/voice_mic', MSG_AUDIO, depth=KEEP_ALL)
    speech, rate = read_wav(voice_dir / 'en.wav')
    spoken_q = probe.watch('/tts_node/spoken', MSG_STRING, json.loads)
    stopped_q = probe.watch('/tts_node/stopped', MSG_STRING, json.loads)
    speaking_q = probe.watch('/robot_speaking', MSG_BOOL)
    partial_q = probe.watch('/robot_reply_partial', MSG_STRING)  # a listener: none missed
    reply_q = probe.watch('/robot_reply', MSG_STRING)
    for q in (spoken_q, stopped_q, speaking_q, partial_q, reply_q):
        drain(q)
    try:
        assert peer.wait_matched(writes=['/user_utterance'], timeout=90) and \
            probe.transport.wait_for_publishers('/robot_reply_partial', MSG_STRING, 60), \
            (voice_dir / 'chat.log').read_text()[-2000:]
        assert probe.transport.wait_for_publishers('/tts_node/spoken', MSG_STRING, 60), \
            (voice_dir / 'tts.log').read_text()[-2000:]
        assert probe.transport.wait_for_subscribers('/voice_mic', MSG_AUDIO, 90), \
            (voice_dir / 'stt_barge.log').read_text()[-2000:]
        time.sleep(1.0)  # the chat node evaluates its persona once at start-up
        peer.publish('/user_utterance', STORY)
        started = speaking_q.get(timeout=60)[1]
        # TTS had the first sentence and was speaking before the reply was complete
        assert started and reply_q.empty(), 'the reply was complete before speech began'
        # a child talks over the robot as soon as it speaks: the STT node barges in
        for i in range(0, len(speech), rate // 10):
            microphone(AudioChunk(speech[i:i + rate // 10], rate))
        first = spoken_q.get(timeout=60)[1]
        assert Path(first['wav']).is_file() and read_wav(first['wav'])[1] == 22050
        report = stopped_q.get(timeout=90)[1]
        stop_time = time.time()
        assert report['was_speaking'] and report['stopped_ms'] <= 100, report
        cut_at, cancelled = reply_q.get(timeout=30)
        answer = reply_q.get(timeout=90)[1]
        assert answer, 'the barge-in utterance got no reply'
        turns = db_messages(voice_dir / 'data', 'default_0')
        assert [r for r, _, _ in turns] == ['user', 'assistant', 'user', 'assistant']
        assert turns[1][2] == 1, 'the cut reply is not marked interrupted'
        assert sum(w in words(turns[2][1]) for w in words(ENGLISH)) >= 6
        assert turns[1][1].strip() == cancelled.strip()  # the cut reply, kept as far as it got
        time.sleep(1.0)
        # the new reply needs a prompt evaluation first: nothing of it within 50 ms of the cut
        partials = [(t, text) for t, text in (partial_q.get() for _ in range(partial_q.qsize()))]
        old = [text for t, text in partials if t < cut_at + 0.05]
        new = [text for t, text in partials if t >= cut_at + 0.05]
        reports = [first] + drain(spoken_q)
        speaking = [started] + drain(speaking_q)
        before = [r for r in reports if r['start'] < stop_time]
        after = [r for r in reports if r['start'] >= stop_time]
        assert before[-1]['stopped'], 'the sentence being spoken was not cut'
        assert [r['text'] for r in before] == old[:len(before)]  # in order
        assert all(a['end'] <= b['start'] + 0.001 for a, b in zip(before, before[1:]))
        assert all(r['text'] in new for r in after), 'the stopped reply went on speaking'
        assert True in speaking and False in speaking
        assert 'barge-in: /chat_node/cancel -> cancelled' in \
            (voice_dir / 'stt_barge.log').read_text()
    finally:
        stop(stt)
        stop(tts)
        stop(chat)


def test_launch_file_starts_the_voice_nodes_on_request():
    """chat.launch.py declares use_stt/use_tts and starts installed executables only."""
    tree = ast.parse((ROOT / 'launch' / 'chat.launch.py').read_text(encoding='utf-8'))
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)}
    assert {'use_stt', 'use_tts', 'stt_node', 'tts_node', 'robot_speaking'} <= strings
    scripts = (ROOT / 'setup.py').read_text(encoding='utf-8')
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    executables = [kw.value.value for n in calls for kw in n.keywords
                   if kw.arg == 'executable' and isinstance(kw.value, ast.Constant)]
    executables += [n.args[1].value for n in calls  # voice_node(context, 'stt_node', ...)
                    if isinstance(n.func, ast.Name) and n.func.id == 'voice_node']
    assert sorted(executables) == ['chat_node', 'console_node', 'stt_node', 'tts_node']
    assert {'audio_in', 'audio_out', 'audio/in', 'audio/out'} <= strings
    assert all(f"'{e} = kidscare_llm.nodes.{e}:main'" in scripts for e in executables)


class _FakeMicrophone:
    def __init__(self):
        self.open = False

    def start(self):
        self.open = True

    def stop(self):
        self.open = False


def test_push_to_talk_captures_then_publishes_once():
    from kidscare_llm.nodes.stt_node import SttNode
    transport = _FakeTransport({'stt.input': 'none', 'stt.always_listen': False})
    node = SttNode(transport, lambda params: _FakeTranscriber())
    try:
        node.on_push_to_talk(True)  # no microphone: refused, and said so
        assert transport.sent == [('~/listening', False)]
        node.microphone = mic = _FakeMicrophone()
        node.on_push_to_talk(True)
        assert mic.open and transport.sent[-1] == ('~/listening', True)
        for _ in range(10):
            node.on_audio(np.zeros(1600, np.float32))
        node.on_push_to_talk(False)
        assert not mic.open and transport.sent[-1] == ('~/listening', False)
        deadline = time.monotonic() + 5
        while ('user_utterance', 'stop please') not in transport.sent and \
                time.monotonic() < deadline:
            time.sleep(0.01)
        assert [v for t, v in transport.sent if t == 'user_utterance'] == ['stop please']
    finally:
        node.close()


def test_speaking_pace_changes_without_reloading_the_voices():
    """tts.length_scale and tts.espeak_wpm are live: the next sentence uses the new pace."""
    synth = Synthesizer('auto')
    piper, espeak = synth.load('piper'), synth.load('espeak-ng')
    normal = [len(a) / r for a, r, _ in (synth.synthesize(ENGLISH), synth.synthesize(KOREAN))]
    synth.set_pace(length_scale=1.6, espeak_wpm=90)
    slow = [len(a) / r for a, r, _ in (synth.synthesize(ENGLISH), synth.synthesize(KOREAN))]
    assert synth.load('piper') is piper and synth.load('espeak-ng') is espeak  # not reloaded
    assert slow[0] > normal[0] * 1.3 and slow[1] > normal[1] * 1.3
