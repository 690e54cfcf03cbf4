"""Time that moves only when a test says so: no test sleeps to make time pass."""

from __future__ import annotations

import threading


class FakeTime:
    """A monotonic clock that only moves when :meth:`sleep` (or :meth:`advance`) is called;
    inject ``clock`` and ``sleep`` where the code under test takes them."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0, f"negative sleep {seconds}"
        self.sleeps.append(float(seconds))
        self.now += float(seconds)

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeClock:
    """A wall clock (seconds since the epoch) a test moves forward, safe across threads: the
    emulator's expiry decisions read it (``EmulatorConfig(clock=...)``)."""

    def __init__(self, start: float = 1_780_000_000.0) -> None:
        self.now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds
