"""An independent ROS 2 wire peer for tests: plain cyclonedds, none of the project's code.

It stands in for "another robot node": it writes std_msgs/String on rt/<topic> exactly as
rmw_cyclonedds_cpp would (XCDR1, reliable, keep-last 10, volatile) and reads them back.
"""

from dataclasses import dataclass
import time

from cyclonedds.core import Policy, Qos
from cyclonedds.domain import DomainParticipant
from cyclonedds.idl import IdlStruct
from cyclonedds.pub import DataWriter
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic
from cyclonedds.util import duration

QOS = Qos(Policy.Reliability.Reliable(duration(seconds=1)), Policy.History.KeepLast(10),
          Policy.Durability.Volatile, Policy.DataRepresentation(use_cdrv0_representation=True))
# A peer that must not lose anything (floods, counting every answer): ROS 2's KEEP_ALL history.
QOS_ALL = Qos(Policy.Reliability.Reliable(duration(seconds=10)), Policy.History.KeepAll,
              Policy.Durability.Volatile, Policy.DataRepresentation(use_cdrv0_representation=True))


@dataclass
class String_(IdlStruct, typename='std_msgs::msg::dds_::String_'):
    """std_msgs/String; a bytes value is written as raw CDR (to send invalid UTF-8)."""

    data: str

    def serialize(self, *args, **kwargs):
        if not isinstance(self.data, bytes):
            return super().serialize(*args, **kwargs)
        raw = self.data + b'\x00'
        body = len(raw).to_bytes(4, 'little') + raw
        return b'\x00\x01\x00\x00' + body + b'\x00' * (-len(body) % 4)


class Peer:
    """Writers and readers on ROS 2 topics, by ROS name."""

    def __init__(self, domain_id: int, keep_all: bool = False):
        self.dp = DomainParticipant(domain_id)
        self.qos = QOS_ALL if keep_all else QOS
        self._topics = {}
        self.writers = {}
        self.readers = {}

    def _topic(self, name):
        if name not in self._topics:
            self._topics[name] = Topic(self.dp, 'rt' + name, String_, qos=self.qos)
        return self._topics[name]

    def writer(self, name):
        if name not in self.writers:
            self.writers[name] = DataWriter(self.dp, self._topic(name), qos=self.qos)
        return self.writers[name]

    def reader(self, name):
        if name not in self.readers:
            self.readers[name] = DataReader(self.dp, self._topic(name), qos=self.qos)
        return self.readers[name]

    def wait_matched(self, writes=(), reads=(), timeout=60.0):
        """Wait until every named writer and reader has matched a peer."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self.writer(w).get_matched_subscriptions() for w in writes) and \
                    all(self.reader(r).get_matched_publications() for r in reads):
                return True
            time.sleep(0.05)
        return False

    def publish(self, name, data):
        self.writer(name).write(String_(data=data))

    def take(self, name):
        return [s.data for s in self.reader(name).take(N=1000) if s.sample_info.valid_data]

    def collect_until(self, full, partial_names=(), timeout=60.0):
        """Collect messages on partial_names until one arrives on full; return both."""
        got = {n: [] for n in partial_names}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for n in partial_names:
                got[n] += self.take(n)
            final = self.take(full)
            if final:
                for n in partial_names:
                    got[n] += self.take(n)
                return final[-1], got
            time.sleep(0.01)
        return None, got
