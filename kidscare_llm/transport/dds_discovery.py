"""Where plain DDS looks for peers, and the QoS its endpoints use: both as ROS 2 does.

Discovery follows ROS_AUTOMATIC_DISCOVERY_RANGE as rmw_cyclonedds_cpp (Jazzy) applies it,
LOCALHOST unless set; QoS is ROS 2's default profile with XCDR1 and the type hash in USER_DATA
(see ../shared/DESIGN.md). Only the DDS transport imports this module.
"""

import logging
import os
import threading
from typing import Any, Dict, Mapping, Optional
from xml.sax.saxutils import quoteattr

from cyclonedds import core, domain, util

from kidscare_llm.transport.base import DEPTH, KEEP_ALL, TransportError
from kidscare_llm.transport.dds_types import TYPE_HASH

RANGES = ('LOCALHOST', 'SUBNET', 'OFF', 'SYSTEM_DEFAULT')

_DOMAINS: Dict[int, Any] = {}  # the configured Domain of each id this process joined
_LOCK = threading.Lock()


def discovery_config(env: Mapping[str, str] = os.environ) -> str:
    """Return the Cyclone DDS configuration for ROS 2's discovery settings in env.

    The same fragment rmw_cyclonedds_cpp (Jazzy) puts before CYCLONEDDS_URI, so plain-DDS
    nodes and ROS 2 nodes find each other alike. ROS_AUTOMATIC_DISCOVERY_RANGE decides;
    unset, ROS_LOCALHOST_ONLY=0 means SUBNET, anything else LOCALHOST: like the launch file,
    a child's words stay on this computer unless someone opens it up. ROS_STATIC_PEERS adds
    peers (LOCALHOST, SUBNET).
    """
    scope = (env.get('ROS_AUTOMATIC_DISCOVERY_RANGE') or '').strip().upper()
    if not scope:
        scope = 'SUBNET' if env.get('ROS_LOCALHOST_ONLY', '').strip() == '0' else 'LOCALHOST'
    if scope not in RANGES:
        raise TransportError(f'ROS_AUTOMATIC_DISCOVERY_RANGE={scope}: use one of '
                             + ', '.join(RANGES))
    peers = [p.strip() for p in env.get('ROS_STATIC_PEERS', '').split(';') if p.strip()]
    if scope == 'LOCALHOST':
        peers.insert(0, 'localhost')
    elif scope != 'SUBNET':
        peers = []
    parts = []
    if scope in ('LOCALHOST', 'OFF'):
        parts.append('<General><AllowMulticast>false</AllowMulticast></General>')
    if scope == 'OFF':  # a tag no other process shares: nobody discovers us
        parts.append(f'<Discovery><ParticipantIndex>none</ParticipantIndex>'
                     f'<Tag>ros_discovery_off_{os.getpid()}</Tag></Discovery>')
    elif peers:
        parts.append('<Discovery><ParticipantIndex>auto</ParticipantIndex>'
                     '<MaxAutoParticipantIndex>32</MaxAutoParticipantIndex><Peers>'
                     + ''.join(f'<Peer address={quoteattr(p)}/>' for p in peers)
                     + '</Peers></Discovery>')
    fragment = f'<CycloneDDS><Domain>{"".join(parts)}</Domain></CycloneDDS>' if parts else ''
    return ','.join(c for c in (fragment, env.get('CYCLONEDDS_URI', '')) if c)


def join_domain(domain_id: int, log: logging.Logger) -> None:
    """Create the domain with our discovery configuration, once per process.

    Cyclone configures a domain when its first participant or Domain object appears; later
    participants of the same id share it, so this must run before the first one.
    """
    with _LOCK:
        if domain_id in _DOMAINS:
            return
        config = discovery_config()
        try:
            _DOMAINS[domain_id] = domain.Domain(domain_id, config) if config else None
        except core.DDSException as exc:  # joined already by other code here
            log.debug('domain %d keeps its configuration: %s', domain_id, exc)
            _DOMAINS[domain_id] = None


def qos(type_key: Optional[str] = None, depth: Optional[int] = DEPTH) -> core.Qos:
    """Return ROS 2's default QoS (reliable, volatile) with depth, XCDR1 and the type hash.

    depth KEEP_ALL keeps every message until acknowledged. A type_key adds Jazzy's
    `typehash=` USER_DATA (topics themselves go without it).
    """
    history = core.Policy.History.KeepAll if depth is KEEP_ALL else \
        core.Policy.History.KeepLast(depth)
    policies = [core.Policy.Reliability.Reliable(util.duration(seconds=1)),
                history, core.Policy.Durability.Volatile,
                core.Policy.DataRepresentation(use_cdrv0_representation=True)]
    if type_key:
        policies.append(core.Policy.Userdata(f'typehash={TYPE_HASH[type_key]};'.encode()))
    return core.Qos(*policies)
