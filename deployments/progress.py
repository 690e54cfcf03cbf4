"""How far ``mori-pipeline run`` is: a progress bar on a terminal, plain lines otherwise.

:class:`RunDisplay` is a :class:`~mori.batch.progress.RunProgress`: the ``protect`` flow (which
the CLI runs in its own process) tells it the planned total and each finished order. On a
terminal it draws a ``rich`` bar (images done/total, images per second, time left); when
stdout is a file or a pipe it prints a plain line at most every ``interval`` seconds and when
the last order is done (``120/400 images, 3.1 images/s, about 1.5 min left``); ``quiet``
prints nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal, Self

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

__all__ = ["Mode", "Pace", "RunDisplay", "duration", "progress_line"]

Mode = Literal["bar", "lines", "quiet"]

#: Seconds between two plain progress lines.
LINE_INTERVAL = 10.0


@dataclass
class Pace:
    """Images done out of a total since ``started``; the rate and the time left."""

    total: int
    started: float
    done: int = 0

    def rate(self, now: float) -> float | None:
        """Images per second so far, ``None`` before the first order is done."""
        elapsed = now - self.started
        return self.done / elapsed if self.done and elapsed > 0 else None

    def left(self, now: float) -> float | None:
        """Seconds until every image is done at the rate so far, ``None`` when unknown."""
        rate = self.rate(now)
        return max(0, self.total - self.done) / rate if rate else None


def duration(seconds: float) -> str:
    """``40 s``, ``1.5 min`` or ``2.1 h``."""
    if seconds < 90:
        return f"{round(seconds)} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def progress_line(pace: Pace, now: float) -> str:
    """``120/400 images, 3.1 images/s, about 1.5 min left`` (``done`` at the end)."""
    rate, left = pace.rate(now), pace.left(now)
    parts = [f"{pace.done}/{pace.total} images"]
    if rate is not None:
        parts.append(f"{rate:.1f} images/s")
    if pace.done >= pace.total:
        parts.append("done")
    elif left is not None:
        parts.append(f"about {duration(left)} left")
    return ", ".join(parts)


@dataclass
class RunDisplay:
    """A run's progress on ``console`` (see the module docstring); use as a context manager."""

    mode: Mode
    console: Console
    clock: Callable[[], float] = time.monotonic
    interval: float = LINE_INTERVAL
    pace: Pace | None = field(default=None, init=False)
    _bar: Progress | None = field(default=None, init=False)
    _task: TaskID | None = field(default=None, init=False)
    _last_line: float = field(default=0.0, init=False)

    @classmethod
    def for_stdout(cls, quiet: bool = False) -> RunDisplay:
        """A bar when stdout is a terminal, lines when it is not, nothing when ``quiet``."""
        console = Console(highlight=False)
        mode: Mode = "quiet" if quiet else ("bar" if console.is_terminal else "lines")
        return cls(mode, console)

    def planned(self, orders: int, images: int) -> None:
        """Start showing progress towards ``images`` images in ``orders`` orders."""
        now = self.clock()
        self.pace, self._last_line = Pace(images, now), now
        if self.mode == "quiet" or not images:
            return
        if self.mode == "lines":
            self.console.print(f"{images} images in {orders} orders to drive", markup=False)
            return
        self._bar = Progress(
            TextColumn("protect"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("images"),
            TextColumn("{task.fields[rate]}"),
            TextColumn("{task.fields[left]}"),
            console=self.console,
            get_time=self.clock,
        )
        self._task = self._bar.add_task("protect", total=images, rate="", left="")
        self._bar.start()

    def order_done(self, images: int) -> None:
        """Count an order's images as done; redraw the bar or print a line when one is due."""
        if self.pace is None:
            return
        self.pace.done += images
        now = self.clock()
        if self._bar is not None and self._task is not None:
            rate, left = self.pace.rate(now), self.pace.left(now)
            if self.pace.done >= self.pace.total:
                remaining = "done"
            else:
                remaining = f"about {duration(left)} left" if left is not None else ""
            self._bar.update(
                self._task,
                completed=min(self.pace.done, self.pace.total),
                rate=f"{rate:.1f} images/s" if rate is not None else "",
                left=remaining,
            )
        elif self.mode == "lines":
            finished = self.pace.done >= self.pace.total
            if finished or now - self._last_line >= self.interval:
                self._last_line = now
                self.console.print(progress_line(self.pace, now), markup=False)

    def close(self) -> None:
        """Stop the bar (its last state stays on the terminal)."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
