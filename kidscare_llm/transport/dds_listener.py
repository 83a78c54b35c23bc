"""A DataReader listener that hands every sample to Python, in order, and none after a stop.

cyclonedds fires a listener when new data arrives, not for data left unread, and it may fire
before the Python reader object exists (the callback then gets None). This listener drains the
reader completely each time and remembers such an early wake-up, so no sample waits for the
next message. Only the DDS transport imports this module.
"""

import threading
from typing import Any, Callable, Optional

from cyclonedds import core, sub


class DrainingListener:
    """Deliver each valid sample of one reader to on_sample on the DDS thread that woke us.

    stop ends delivery; busy.active is set while on_sample runs, so the transport can tell
    when shutdown() is called from inside one of its own callbacks.
    """

    def __init__(self, on_sample: Callable[[Any], None], stop: threading.Event,
                 busy: threading.local, name: str):
        self._on_sample = on_sample
        self._stop = stop
        self._busy = busy
        self._name = name
        self._reader: Optional[Any] = None
        self._missed = False
        self._lock = threading.Lock()  # guards _reader and _missed
        self._drain_lock = threading.Lock()  # one drain at a time keeps samples in order
        self.dds = core.Listener(on_data_available=self._on_data_available)

    def open(self, participant, topic, qos) -> Any:
        """Create the reader with this listener and drain what arrived before it existed."""
        reader = sub.DataReader(participant, topic, qos=qos, listener=self.dds)
        with self._lock:
            self._reader, missed = reader, self._missed
        if missed:
            threading.Thread(target=self._drain, args=(reader,), name=f'{self._name}-first',
                             daemon=True).start()
        return reader

    def _on_data_available(self, _reader) -> None:
        with self._lock:
            reader, self._missed = self._reader, self._reader is None
        if reader is not None:
            self._drain(reader)

    def _drain(self, reader) -> None:
        """Take everything, in order: the listener fires on new data, not on data left."""
        with self._drain_lock:
            self._busy.active = True
            try:
                while not self._stop.is_set():
                    samples = reader.take(N=256)
                    if not samples:
                        return
                    for sample in samples:
                        if sample.sample_info.valid_data:  # not a writer-gone notice
                            self._on_sample(sample)
            finally:
                self._busy.active = False
