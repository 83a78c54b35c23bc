"""The chat node under rclpy, and the DDS transport talking to rclpy nodes both ways.

Skipped cleanly where rclpy is not importable; run with a sourced ROS 2 (Humble or Jazzy)
and RMW_IMPLEMENTATION=rmw_cyclonedds_cpp.
"""

import os
import queue
import subprocess
import time

import pytest

rclpy = pytest.importorskip('rclpy', reason='rclpy not importable: source a ROS 2 setup.bash')
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue  # noqa: E402, I100, I202
from rcl_interfaces.srv import (DescribeParameters, GetParameters,  # noqa: E402
                                ListParameters, SetParameters)
from std_msgs.msg import String  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from conftest import BIN, ROOT  # noqa: E402, I100

pytestmark = [pytest.mark.ros, pytest.mark.slow]
FAST = ['-p', 'llm.temperature=0', '-p', 'llm.max_tokens=32', '-p', 'model.download=false']
CYCLONE = os.environ.get('RMW_IMPLEMENTATION', 'rmw_cyclonedds_cpp') == 'rmw_cyclonedds_cpp'


@pytest.fixture(scope='module')
def ros():
    """An rclpy node in this process: the "other robot node"."""
    rclpy.init()
    node = rclpy.create_node('kidscare_test_peer')
    replies, partials = queue.Queue(), queue.Queue()
    node.create_subscription(String, '/robot_reply', lambda m: replies.put(m.data), 10)
    node.create_subscription(String, '/robot_reply_partial', lambda m: partials.put(m.data), 10)
    pub = node.create_publisher(String, '/user_utterance', 10)
    yield node, pub, replies, partials
    node.destroy_node()
    rclpy.shutdown()


def node_env(tmp_path):
    """Environment of a node process: its own data dir, this checkout's code first.

    A sourced colcon workspace puts its installed copy of kidscare_llm on PYTHONPATH, ahead of
    the venv's editable install: without ROOT first, the processes would run that copy.
    """
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get('PYTHONPATH')) if p)
    return dict(os.environ, KIDSCARE_DATA_DIR=str(tmp_path / 'data'), PYTHONUNBUFFERED='1',
                PYTHONPATH=path)


def start_node(transport, tmp_path):
    env = node_env(tmp_path)
    log = (tmp_path / f'{transport}.log').open('wb')
    return subprocess.Popen([str(BIN / 'kidscare-llm'), 'node', '--transport', transport, *FAST],
                            env=env, stdout=log, stderr=subprocess.STDOUT)


def spin_until(node, condition, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
        if condition():
            return True
    return False


def converse(ros, text, timeout=90.0):
    node, pub, replies, partials = ros
    for q in (replies, partials):
        while not q.empty():
            q.get_nowait()
    assert spin_until(node, lambda: pub.get_subscription_count() > 0), 'no chat node'
    assert spin_until(node, lambda: node.count_publishers('/robot_reply') > 0)
    time.sleep(0.5)  # let the reply reader match too
    pub.publish(String(data=text))
    assert spin_until(node, lambda: not replies.empty(), timeout), 'no reply'
    got = []
    while not partials.empty():
        got.append(partials.get_nowait())
    return replies.get_nowait(), got


def call(node, srv_type, name, request, timeout=30.0):
    client = node.create_client(srv_type, name)
    assert client.wait_for_service(timeout_sec=timeout), f'{name} not available'
    future = client.call_async(request)
    rclpy.spin_until_future_complete(node, future, timeout_sec=timeout)
    node.destroy_client(client)
    return future.result()


@pytest.mark.parametrize('transport', ['rclpy', 'dds'])
def test_rclpy_peer_converses_and_resets(ros, transport, tmp_path):
    if transport == 'dds' and not CYCLONE:
        pytest.skip('plain DDS interoperates with rmw_cyclonedds_cpp only')
    proc = start_node(transport, tmp_path)
    try:
        reply, partials = converse(ros, 'Hello! My name is Lion.')
        assert reply and partials
        result = call(ros[0], Trigger, '/chat_node/reset_session', Trigger.Request())
        assert result.success and 'default_1' in result.message
        reply, _ = converse(ros, 'What is my name?')
        assert reply and proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_parameters_are_declared_with_descriptions(ros, tmp_path):
    proc = start_node('rclpy', tmp_path)
    try:
        node = ros[0]
        names = call(node, ListParameters, '/chat_node/list_parameters',
                     ListParameters.Request()).result.names
        assert {'model.path', 'model.n_gpu_layers', 'llm.temperature', 'chat.queue_size'} <= \
            set(names)
        described = call(node, DescribeParameters, '/chat_node/describe_parameters',
                         DescribeParameters.Request(names=['model.n_ctx'])).descriptors
        assert 'Context window' in described[0].description
        assert described[0].read_only  # a restart is needed: ros2 param set refuses it
        assert described[0].integer_range[0].from_value == 256
        live = call(node, DescribeParameters, '/chat_node/describe_parameters',
                    DescribeParameters.Request(names=['llm.temperature'])).descriptors[0]
        assert not live.read_only and live.floating_point_range[0].to_value == 2.0
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def _set(node, name, value):
    """Set one parameter of /chat_node as `ros2 param set` does; return the result."""
    if isinstance(value, float):
        pv = ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value)
    elif isinstance(value, int):
        pv = ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=value)
    else:
        pv = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value)
    request = SetParameters.Request(parameters=[Parameter(name=name, value=pv)])
    return call(node, SetParameters, '/chat_node/set_parameters', request).results[0]


def test_live_parameters_apply_and_the_others_are_refused(ros, tmp_path):
    """ros2 param set: a live parameter changes the next reply; a restart-only one is refused."""
    proc = start_node('rclpy', tmp_path)
    try:
        node = ros[0]
        assert converse(ros, 'Tell me a story about a cat.')[0]  # ready, max_tokens 32
        assert _set(node, 'llm.max_tokens', 4).successful
        got = call(node, GetParameters, '/chat_node/get_parameters',
                   GetParameters.Request(names=['llm.max_tokens'])).values[0]
        assert got.integer_value == 4
        short, _ = converse(ros, 'Tell me a story about a dog.')
        assert short and len(short.split()) <= 6  # four tokens at most
        refused = _set(node, 'model.n_ctx', 8192)
        assert not refused.successful and refused.reason  # says why
        bad = _set(node, 'llm.temperature', 'abc')
        assert not bad.successful
        out_of_range = _set(node, 'llm.temperature', 5.0)
        assert not out_of_range.successful
    finally:
        proc.terminate()
        proc.wait(timeout=15)


@pytest.mark.skipif(not CYCLONE, reason='plain DDS interoperates with rmw_cyclonedds_cpp only')
def test_dds_client_talks_to_the_rclpy_node(tmp_path):
    proc = start_node('rclpy', tmp_path)
    try:
        say = subprocess.run([str(BIN / 'kidscare-llm'), 'say', '--transport', 'dds', '--reset',
                              '--timeout', '90', 'Hello from plain DDS!'],
                             capture_output=True, text=True, timeout=120, env=node_env(tmp_path))
        assert say.returncode == 0, say.stderr
        assert say.stdout.strip() and 'new session default_1' in say.stderr
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def voice_node(name, transport, tmp_path, *args):
    env = node_env(tmp_path)
    log = (tmp_path / f'{name}-{transport}.log').open('wb')
    return subprocess.Popen([str(BIN / name), '--transport', transport, '--ros-args', *args],
                            env=env, stdout=log, stderr=subprocess.STDOUT)


@pytest.mark.parametrize('transport', ['rclpy', 'dds'])
def test_audio_topics_speak_audio_common_msgs(ros, transport, tmp_path):
    """An audio_capturer-style int16 16 kHz stream in; float32 AudioStamped out."""
    audio_msgs = pytest.importorskip('audio_common_msgs.msg',
                                     reason='audio_common_msgs not built in this ROS 2')
    if transport == 'dds' and not CYCLONE:
        pytest.skip('plain DDS interoperates with rmw_cyclonedds_cpp only')
    import numpy as np

    from kidscare_llm.core.voice.audio import resample
    from kidscare_llm.core.voice.tts import PiperEngine

    node = ros[0]
    audio, rate = PiperEngine().synthesize('The little lion likes to eat red apples.')
    pcm = np.round(resample(audio, rate, 16000) * 32767).astype(np.int16)
    heard, out = queue.Queue(), queue.Queue()
    node.create_subscription(String, '/user_utterance', lambda m: heard.put(m.data), 10)
    node.create_subscription(audio_msgs.AudioStamped, '/ros_test_out', out.put, 100)
    mic = node.create_publisher(audio_msgs.AudioStamped, '/ros_test_in', 100)
    say = node.create_publisher(String, '/ros_test_say', 10)
    stt = voice_node('stt_node', transport, tmp_path, '-p', 'stt.input:=topic',
                     '-p', 'stt.language:=en', '-r', 'audio/in:=/ros_test_in')
    tts = voice_node('tts_node', transport, tmp_path, '-p', 'tts.output:=topic',
                     '-r', 'audio/out:=/ros_test_out', '-r', 'robot_reply_partial:=/ros_test_say')
    try:
        assert spin_until(node, lambda: mic.get_subscription_count() > 0, 90)
        assert spin_until(node, lambda: node.count_publishers('/user_utterance') > 0, 30)
        time.sleep(1.0)
        for i in range(0, len(pcm), 512):  # as audio_common's capturer: 512 samples a message
            msg = audio_msgs.AudioStamped()
            msg.audio.audio_data.int16_data = pcm[i:i + 512].tolist()
            msg.audio.info.format, msg.audio.info.channels = 8, 1  # paInt16, mono
            msg.audio.info.rate, msg.audio.info.chunk = 16000, 512
            mic.publish(msg)
            rclpy.spin_once(node, timeout_sec=512 / 16000)
        assert spin_until(node, lambda: not heard.empty(), 60), 'the STT node heard nothing'
        assert 'lion' in heard.get().lower()
        assert spin_until(node, lambda: say.get_subscription_count() > 0, 30)
        say.publish(String(data='Hello from the robot.'))
        assert spin_until(node, lambda: out.qsize() > 20, 60), 'no audio on the topic'
        msg = out.get()
        assert (msg.audio.info.format, msg.audio.info.channels, msg.audio.info.rate) == \
            (1, 1, 22050)
        assert 0 < len(msg.audio.audio_data.float32_data) <= 441
    finally:
        for proc in (stt, tts):
            proc.terminate()
            proc.wait(timeout=15)
