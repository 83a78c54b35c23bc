"""Bring up the robot's conversation: the chat node, and the voice nodes when asked for.

  ros2 launch kidscare_llm chat.launch.py [model_path:=...] [use_stt:=true] [use_tts:=true]

Speech in: stt_node -> /user_utterance -> chat_node; speech out: chat_node ->
/robot_reply_partial -> tts_node -> /robot_speaking -> stt_node (mute or barge-in).
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.conditions import IfCondition
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
    params = LaunchConfiguration('params_file')
    log_level = ['--log-level', LaunchConfiguration('log_level')]
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
        DeclareLaunchArgument('log_level', default_value='info',
                              description='debug, info, warn or error'),
        DeclareLaunchArgument(
            'discovery_range', default_value='LOCALHOST',
            description='DDS discovery: LOCALHOST (default: the conversation stays on this '
                        'computer), SUBNET to reach the other computers of the robot, OFF'),

        OpaqueFunction(function=discovery),
        OpaqueFunction(function=chat_node),
        Node(
            package='kidscare_llm', executable='stt_node', name='stt_node', output='screen',
            parameters=[params], ros_arguments=log_level,
            remappings=[('user_utterance', '/user_utterance'),
                        ('robot_speaking', '/robot_speaking')],
            condition=IfCondition(LaunchConfiguration('use_stt')),
        ),
        Node(
            package='kidscare_llm', executable='tts_node', name='tts_node', output='screen',
            parameters=[params], ros_arguments=log_level,
            remappings=[('robot_reply_partial', '/robot_reply_partial'),
                        ('robot_reply', '/robot_reply'),
                        ('robot_speaking', '/robot_speaking')],
            condition=IfCondition(LaunchConfiguration('use_tts')),
        ),
    ])
