"""``mori-pipeline run``'s progress: the bar's rendering, the plain lines, ``--quiet``; and the
same through the CLI on a real run (emulator over HTTP, Prefect's test server)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from rich.console import Console

from deployments.progress import Pace, RunDisplay, duration, progress_line
from deployments.stack import LocalStack

BIN = Path(sys.executable).parent


class Clock:
    """Seconds moved by the test."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0, "0 s"),
        (40.4, "40 s"),
        (89, "89 s"),
        (90, "1.5 min"),
        (5399, "90.0 min"),
        (7560, "2.1 h"),
    ],
)
def test_duration(seconds: float, shown: str) -> None:
    assert duration(seconds) == shown


@pytest.mark.parametrize(
    ("done", "elapsed", "line"),
    [
        (0, 5.0, "0/400 images"),
        (120, 38.7, "120/400 images, 3.1 images/s, about 1.5 min left"),
        (400, 100.0, "400/400 images, 4.0 images/s, done"),
    ],
)
def test_progress_line(done: int, elapsed: float, line: str) -> None:
    assert progress_line(Pace(400, 0.0, done), elapsed) == line


def test_plain_lines_come_at_most_every_interval_and_at_the_end() -> None:
    clock, out = Clock(), StringIO()
    display = RunDisplay("lines", Console(file=out, width=200), clock=clock, interval=10.0)
    display.planned(4, 400)
    for seconds, images in ((5, 100), (11, 100), (15, 100), (30, 100)):
        clock.now = 100.0 + seconds
        display.order_done(images)
    assert out.getvalue().splitlines() == [
        "400 images in 4 orders to drive",
        "200/400 images, 18.2 images/s, about 11 s left",
        "400/400 images, 13.3 images/s, done",
    ]


def test_the_bar_shows_images_rate_and_time_left() -> None:
    clock, out = Clock(), StringIO()
    console = Console(file=out, force_terminal=True, width=120, color_system=None)
    with RunDisplay("bar", console, clock=clock) as display:
        display.planned(4, 400)
        clock.now += 20
        display.order_done(100)
        clock.now += 20
        display.order_done(100)
    screen = out.getvalue()
    last = screen.rsplit("\r", 1)[-1]  # the bar's final state, as the terminal keeps it
    assert re.search(r"protect .*━.* 200/400 images 5\.0 images/s about 40 s left", last), last


def test_quiet_shows_nothing() -> None:
    out = StringIO()
    with RunDisplay("quiet", Console(file=out, force_terminal=True)) as display:
        display.planned(1, 10)
        display.order_done(10)
    assert out.getvalue() == ""


def test_nothing_to_drive_draws_no_bar() -> None:
    out = StringIO()
    with RunDisplay("bar", Console(file=out, force_terminal=True)) as display:
        display.planned(0, 0)
    assert out.getvalue() == ""


@pytest.mark.parametrize("quiet", [False, True], ids=["lines", "quiet"])
def test_the_cli_prints_lines_when_not_a_terminal(
    prefect: str, tmp_path: Path, quiet: bool
) -> None:
    from tests.support.images import make_manifest

    manifest = make_manifest(tmp_path / "batch", 4, seed=41)
    ledger = tmp_path / "batch" / "audit" / "ledger.sqlite"
    with LocalStack(ledger, processing_seconds=0.1, webhooks=False):
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env.update(PREFECT_API_URL=prefect, PREFECT_SERVER_ANALYTICS_ENABLED="false")
        args = ["run", "--manifest", str(manifest), "--order-size", "2", "--completion", "poll"]
        done = subprocess.run(
            [str(BIN / "mori-pipeline"), *args, *(["--quiet"] if quiet else [])],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout.strip().splitlines()
    summary = [line for line in out if line.startswith(("run ", "  "))]
    assert summary[0].startswith("run ") and "processed 4, skipped 0" in summary[1]
    progress = [line for line in out if line and line not in summary]
    if quiet:
        assert progress == []
    else:
        assert progress[0] == "4 images in 2 orders to drive"
        assert re.fullmatch(r"4/4 images, [\d.]+ images/s, done", progress[-1]), progress
    assert " | INFO " not in done.stderr  # Prefect's own lines stay off the console
