"""The ROS 2 message types plain DDS speaks, as cyclonedds IDL classes with Jazzy's type hashes.

Names and fields follow the ROS 2 IDL mapping (`<pkg>::msg::dds_::<Type>_`), so rclpy with
rmw_cyclonedds_cpp reads what these write and the other way round (see ../shared/DESIGN.md).
Only the DDS transport imports this module: cyclonedds is imported here, at the top.
"""

from dataclasses import dataclass
import time
from typing import Any, Callable, Dict

from cyclonedds.idl import IdlStruct, types

from kidscare_llm.core.voice.audio import AudioChunk, chunk_from_stamped, PA_FLOAT32
from kidscare_llm.transport.base import MSG_AUDIO, MSG_BOOL, MSG_STRING, SRV_TRIGGER

REQUEST = SRV_TRIGGER + '_Request'
RESPONSE = SRV_TRIGGER + '_Response'

# Jazzy endpoints advertise these in USER_DATA; without them ROS logs a warning per endpoint
# (other types: share/<pkg>/msg|srv/<Type>.json, type_hashes, in a ROS install).
TYPE_HASH = {
    MSG_STRING: 'RIHS01_df668c740482bbd48fb39d76a70dfd4bd59db1288021743503259e948f6b1a18',
    MSG_BOOL: 'RIHS01_feb91e995ff9ebd09c0cb3d2aed18b11077585839fb5db80193b62d74528f6c9',
    MSG_AUDIO: 'RIHS01_f6ad36427cfe3e7132f91509dca5a3be31b9b681f182db6e606e95e781b21611',
    REQUEST: 'RIHS01_d010825374ce8918e72bfd826c82603e60f45419e932ea976f807b74a863a199',
    RESPONSE: 'RIHS01_2d946c21e2fc3f1e9ca6986a8191d85fcc70097a8bb7771a053564bc47009cdf',
}


def string_payload(data: bytes) -> str:
    """Decode a CDR std_msgs/String whose bytes are not UTF-8, replacing the bad bytes.

    A peer may send anything; a child's message must still arrive rather than be dropped.
    """
    order = 'little' if data[1] in (1, 3) else 'big'  # encapsulation: CDR_LE=1, PL_CDR_LE=3
    size = int.from_bytes(data[4:8], order)
    return data[8:8 + max(size - 1, 0)].decode('utf-8', 'replace')


@dataclass
class String_(IdlStruct, typename='std_msgs::msg::dds_::String_'):
    """std_msgs/String; invalid UTF-8 is replaced and marked (invalid_utf8) so it is logged."""

    data: str

    @classmethod
    def deserialize(cls, data, has_header=True, use_version_2=None):
        """Decode a sample; on invalid UTF-8 keep the rest of the text instead of failing."""
        try:
            return super().deserialize(data, has_header=has_header,
                                       use_version_2=use_version_2)
        except UnicodeDecodeError:
            sample = cls(data=string_payload(bytes(data)))
            sample.invalid_utf8 = True
            return sample


@dataclass
class Bool_(IdlStruct, typename='std_msgs::msg::dds_::Bool_'):
    """std_msgs/Bool."""

    data: bool


@dataclass
class Time_(IdlStruct, typename='builtin_interfaces::msg::dds_::Time_'):
    """builtin_interfaces/Time, inside a Header."""

    sec: types.int32
    nanosec: types.uint32


@dataclass
class Header_(IdlStruct, typename='std_msgs::msg::dds_::Header_'):
    """std_msgs/Header, inside AudioStamped."""

    stamp: Time_
    frame_id: str


@dataclass
class AudioData_(IdlStruct, typename='audio_common_msgs::msg::dds_::AudioData_'):
    """audio_common_msgs/AudioData: one sequence per PortAudio sample format."""

    float32_data: types.sequence[types.float32]
    int32_data: types.sequence[types.int32]
    int16_data: types.sequence[types.int16]
    int8_data: types.sequence[types.int8]
    uint8_data: types.sequence[types.uint8]


@dataclass
class AudioInfo_(IdlStruct, typename='audio_common_msgs::msg::dds_::AudioInfo_'):
    """audio_common_msgs/AudioInfo: PortAudio format, channels, rate, samples per chunk."""

    format: types.int32
    channels: types.int32
    rate: types.int32
    chunk: types.int32


@dataclass
class Audio_(IdlStruct, typename='audio_common_msgs::msg::dds_::Audio_'):
    """audio_common_msgs/Audio."""

    audio_data: AudioData_
    info: AudioInfo_


@dataclass
class AudioStamped_(IdlStruct, typename='audio_common_msgs::msg::dds_::AudioStamped_'):
    """audio_common_msgs/AudioStamped, as the ROS 2 audio_common packages publish audio."""

    header: Header_
    audio: Audio_


@dataclass
class Trigger_Request_(IdlStruct, typename='std_srvs::srv::dds_::Trigger_Request_'):
    """std_srvs/Trigger request behind the (client_guid, sequence_number) service header."""

    client_guid: types.uint64
    sequence_number: types.int64
    structure_needs_at_least_one_member: types.uint8 = 0


@dataclass
class Trigger_Response_(IdlStruct, typename='std_srvs::srv::dds_::Trigger_Response_'):
    """std_srvs/Trigger response; a server copies the request's header into it."""

    client_guid: types.uint64
    sequence_number: types.int64
    success: bool = False
    message: str = ''


def audio_stamped(chunk: AudioChunk) -> AudioStamped_:
    """Return an AudioStamped of float32 mono samples, stamped now."""
    now = time.time_ns()
    samples = [float(v) for v in chunk.samples]
    return AudioStamped_(Header_(Time_(now // 10**9, now % 10**9), ''), Audio_(
        AudioData_(samples, [], [], [], []),
        AudioInfo_(PA_FLOAT32, 1, int(chunk.rate), len(samples))))


TYPES: Dict[str, type] = {MSG_STRING: String_, MSG_BOOL: Bool_, MSG_AUDIO: AudioStamped_,
                          REQUEST: Trigger_Request_, RESPONSE: Trigger_Response_}
# value -> message, and back, per topic type (values: str, bool, core.voice.audio.AudioChunk)
MAKE: Dict[str, Callable[[Any], Any]] = {MSG_STRING: lambda value: String_(data=value),
                                         MSG_BOOL: lambda value: Bool_(data=value),
                                         MSG_AUDIO: audio_stamped}
VALUE: Dict[str, Callable[[Any], Any]] = {MSG_STRING: lambda msg: msg.data,
                                          MSG_BOOL: lambda msg: msg.data,
                                          MSG_AUDIO: chunk_from_stamped}
