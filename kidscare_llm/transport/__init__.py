"""The small pub/sub/service interface the nodes use, and how one is chosen.

Two implementations: rclpy where ROS 2 is installed, and plain DDS through cyclonedds with
ROS 2's wire conventions where it is not. Nodes see only Transport.
"""

import importlib.util
import logging
import os
from typing import Any, Mapping, Optional, Sequence

from kidscare_llm.transport.base import (DEEP, KEEP_ALL, MSG_AUDIO, MSG_BOOL, MSG_STRING,
                                         parse_ros_args, SRV_TRIGGER, Transport, TransportError)

__all__ = ['DEEP', 'KEEP_ALL', 'MSG_AUDIO', 'MSG_BOOL', 'MSG_STRING', 'SRV_TRIGGER',
           'Transport', 'TransportError', 'choose', 'create']

CHOICES = ('auto', 'rclpy', 'dds')


def rclpy_available() -> bool:
    """Return True when rclpy can be imported (a sourced ROS 2 install)."""
    return importlib.util.find_spec('rclpy') is not None


def choose(requested: Optional[str] = None) -> str:
    """Resolve 'auto' (or $KIDSCARE_TRANSPORT) to 'rclpy' when importable, else 'dds'."""
    name = (requested or os.environ.get('KIDSCARE_TRANSPORT') or 'auto').lower()
    if name not in CHOICES:
        raise TransportError(f'unknown transport {name!r}; choose one of {", ".join(CHOICES)}')
    if name == 'auto':
        return 'rclpy' if rclpy_available() else 'dds'
    if name == 'rclpy' and not rclpy_available():
        raise TransportError('transport rclpy asked for, but rclpy is not importable: source '
                             'your ROS 2 setup.bash, or use the dds transport')
    return name


def create(node_name: str, requested: Optional[str] = None, args: Sequence[str] = (),
           params_file: Optional[str] = None, overrides: Optional[Mapping[str, Any]] = None,
           remaps: Optional[Mapping[str, str]] = None) -> Transport:
    """Create the chosen transport for a node.

    args are command-line arguments that may hold a --ros-args section (as ros2 launch passes
    them); params_file, overrides and remaps come from our own CLI and take precedence.
    """
    name = choose(requested)
    if name == 'rclpy':
        from kidscare_llm.transport.ros import RclpyTransport
        return RclpyTransport(node_name, params_file, overrides, remaps, args)
    ros_files, ros_overrides, ros_remaps, log_level = parse_ros_args(args)
    if log_level:
        logging.getLogger('kidscare_llm').setLevel(log_level.upper())
    from kidscare_llm.transport.dds import DdsTransport
    return DdsTransport(node_name, ros_files + ([params_file] if params_file else []),
                        {**ros_overrides, **(overrides or {})}, {**ros_remaps, **(remaps or {})})
