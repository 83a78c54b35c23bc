"""Bring up the robot's conversation: the chat node, and the voice nodes when asked for.

  ros2 launch kidscare_llm chat.launch.py [model_path:=...] [use_stt:=true] [use_tts:=true]
                                          [audio_in:=/audio] [audio_out:=/audio/play]
                                          [use_console:=false]

Speech in: stt_node -> /user_utterance -> chat_node; speech out: chat_node ->
/robot_reply_partial -> tts_node -> /robot_speaking -> stt_node (mute or barge-in).
audio_in / audio_out put the voice nodes on audio_common_msgs/AudioStamped topics instead of
the sound card (a robot whose microphone and speaker belong to other nodes). The caregiver
console (console_node, http://127.0.0.1:8088: alerts, children, rules, data) starts too unless
use_console:=false.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

SHARE = get_package_share_directory('kidscare_llm')


def chat_node(context):
    """Start the chat node; model_path and persona override the file only when given."""
    overrides = {}
    for arg, param in (('model_path', 'model.path'), ('persona', 'persona.dir')):
        value = LaunchConfiguration(arg).perform(context)
        if value:
            overrides[param] = value
    return [Node(
        package='kidscare_llm', executable='chat_node', name='chat_node', output='screen',
        parameters=[LaunchConfiguration('params_file'), overrides],
        ros_arguments=['--log-level', LaunchConfiguration('log_level')],
    )]


def voice_node(context, executable, use, audio_arg, param, topic, remappings):
    """Start a voice node when `use` is true; audio_arg, when given, puts it on that topic."""
    if LaunchConfiguration(use).perform(context).lower() not in ('1', 'true'):
        return []
    overrides = {}
    audio = LaunchConfiguration(audio_arg).perform(context)
    if audio:
        overrides[param] = 'topic'
        remappings = remappings + [(topic, audio)]
    return [Node(
        package='kidscare_llm', executable=executable, name=executable, output='screen',
        parameters=[LaunchConfiguration('params_file'), overrides],
        ros_arguments=['--log-level', LaunchConfiguration('log_level')], remappings=remappings,
    )]


def stt_node(context):
    """Start the STT node if use_stt: from the microphone, or from audio_in when given."""
    return voice_node(context, 'stt_node', 'use_stt', 'audio_in', 'stt.input', 'audio/in',
                      [('user_utterance', '/user_utterance'),
                       ('robot_speaking', '/robot_speaking')])


def tts_node(context):
    """Start the TTS node if use_tts: to the sound card, or to audio_out when given."""
    return voice_node(context, 'tts_node', 'use_tts', 'audio_out', 'tts.output', 'audio/out',
                      [('robot_reply_partial', '/robot_reply_partial'),
                       ('robot_reply', '/robot_reply'), ('robot_speaking', '/robot_speaking')])


def console_node(context):
    """Start the caregiver console if use_console (on loopback unless console.bind opens it)."""
    if LaunchConfiguration('use_console').perform(context).lower() not in ('1', 'true'):
        return []
    return [Node(
        package='kidscare_llm', executable='console_node', name='console_node', output='screen',
        parameters=[LaunchConfiguration('params_file')],
        ros_arguments=['--log-level', LaunchConfiguration('log_level')],
    )]


def discovery(context):
    """Keep DDS discovery on this computer unless discovery_range opens it (privacy).

    Jazzy reads ROS_AUTOMATIC_DISCOVERY_RANGE; Humble only knows ROS_LOCALHOST_ONLY.
    """
    scope = LaunchConfiguration('discovery_range').perform(context).upper()
    actions = [SetEnvironmentVariable('ROS_AUTOMATIC_DISCOVERY_RANGE', scope)]
    if os.environ.get('ROS_DISTRO') == 'humble':
        actions.append(SetEnvironmentVariable('ROS_LOCALHOST_ONLY',
                                              '1' if scope == 'LOCALHOST' else '0'))
    return actions


def generate_launch_description():
    """Declare the arguments, then the nodes."""
    return LaunchDescription([
        DeclareLaunchArgument(
            'params_file', default_value=os.path.join(SHARE, 'config', 'kidscare.yaml'),
            description='ROS 2 parameter file with every kidscare_llm parameter'),
        DeclareLaunchArgument(
            'model_path', default_value='',
            description='GGUF model file; empty: model.path from params_file'),
        DeclareLaunchArgument(
            'persona', default_value='',
            description='persona folder (base.txt, few_shot.txt, informations.txt); '
                        'empty: persona.dir from params_file'),
        DeclareLaunchArgument(
            'use_stt', default_value='false',
            description='start stt_node: microphone -> faster-whisper -> /user_utterance'),
        DeclareLaunchArgument(
            'use_tts', default_value='false',
            description='start tts_node: /robot_reply_partial -> piper/espeak-ng -> speaker'),
        DeclareLaunchArgument(
            'audio_in', default_value='',
            description='audio_common_msgs/AudioStamped topic stt_node listens to instead of '
                        'the microphone (e.g. /audio); empty: stt.input from params_file'),
        DeclareLaunchArgument(
            'audio_out', default_value='',
            description='AudioStamped topic tts_node speaks on instead of the sound card; '
                        'empty: tts.output from params_file'),
        DeclareLaunchArgument(
            'use_console', default_value='true',
            description='start console_node: the caregiver web page on the robot '
                        '(docs/console.md)'),
        DeclareLaunchArgument('log_level', default_value='info',
                              description='debug, info, warn or error'),
        DeclareLaunchArgument(
            'discovery_range', default_value='LOCALHOST',
            description='DDS discovery: LOCALHOST (default: the conversation stays on this '
                        'computer), SUBNET to reach the other computers of the robot, OFF'),

        OpaqueFunction(function=discovery),
        OpaqueFunction(function=chat_node),
        OpaqueFunction(function=stt_node),
        OpaqueFunction(function=tts_node),
        OpaqueFunction(function=console_node),
    ])
