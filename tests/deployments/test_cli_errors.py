"""``mori-pipeline``'s expected failures: one line on stderr, exit code 1, no traceback
(``--debug`` adds it); ``run`` checks MORI before it plans anything.

Every preflight cause is met for real: an unresolvable host, a closed port, TLS to a
plain-HTTP server, the emulator refusing a key or speaking G3, a server answering 403.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deployments.checks import check_mori
from deployments.cli import main
from mori.emulator import EmulatorConfig, EmulatorServer
from mori.settings import Settings
from tests.mori.servers import JSONServer, PlainReplyServer, closed_port

BIN = Path(sys.executable).parent
KEY = "sk-cli-SECRET-55"


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    """A one-row manifest whose folder has no audit (and so no ledger) yet."""
    import random

    from deployments.demo import make_image

    make_image(tmp_path / "a.png", random.Random(3), "PNG")
    path = tmp_path / "m.csv"
    path.write_text("source\na.png\n", encoding="utf-8")
    return path


@pytest.fixture
def mori_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """MORI variables of this test only (the key is ``KEY``, nothing else set)."""
    for name in list(os.environ):
        if name.startswith("MORI_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("MORI_API_KEY", KEY)
    return monkeypatch


@pytest.fixture
def g3_emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer(EmulatorConfig(api_keys=frozenset({KEY}), generation="g3")) as server:
        yield server


@pytest.fixture
def other_key_emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer(EmulatorConfig(api_keys=frozenset({"another-key"}))) as server:
        yield server


def _forbidding(method: str, path: str, body: bytes, headers: dict[str, str]) -> tuple:
    return 403, {}, {"success": False, "code": "FORBIDDEN", "message": "not on this plan"}


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert KEY not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@pytest.mark.parametrize(
    ("cause", "expected"),
    [
        (
            "dns",
            "error: cannot resolve nonexistent.invalid (DNS): check MORI_API_URL and the network",
        ),
        ("refused", "refused the connection: check MORI_API_URL (host and port)"),
        ("tls", "failed: check MORI_API_URL (https:// to a plain-HTTP server?)"),
        ("unauthorized", "rejected the credentials (401): check MORI_API_KEY"),
        ("forbidden", "refused these credentials the order API (403): check MORI_API_KEY"),
        ("wrong_generation", "does not serve API generation g1 (404 on its order routes): "),
    ],
)
def test_run_stops_in_one_line_before_planning(
    request: pytest.FixtureRequest,
    mori_env: pytest.MonkeyPatch,
    manifest: Path,
    capsys: pytest.CaptureFixture[str],
    cause: str,
    expected: str,
) -> None:
    with _mori_failing_with(cause, request) as url:
        mori_env.setenv("MORI_API_URL", url)
        started = time.monotonic()
        code = main(["run", "--manifest", str(manifest)])
        elapsed = time.monotonic() - started
    line = _one_line(capsys)
    assert code == 1
    assert expected in line, line
    if cause == "wrong_generation":
        assert line.endswith("set MORI_API_GENERATION=g3")
    assert elapsed < 10
    assert sorted(p.name for p in manifest.parent.iterdir()) == ["a.png", "m.csv"]  # no ledger


class _Failing:
    """A context manager yielding the URL of a MORI that fails with ``cause``."""

    def __init__(self, cause: str, request: pytest.FixtureRequest) -> None:
        self.cause, self.request = cause, request
        self._server: Any = None

    def __enter__(self) -> str:
        if self.cause == "dns":
            return "http://nonexistent.invalid"
        if self.cause == "refused":
            return f"http://127.0.0.1:{closed_port()}"
        if self.cause == "tls":
            self._server = PlainReplyServer().__enter__()
            return f"https://127.0.0.1:{self._server.port}"
        if self.cause == "forbidden":
            self._server = JSONServer(_forbidding).__enter__()
            return str(self._server.url)
        fixture = "other_key_emulator" if self.cause == "unauthorized" else "g3_emulator"
        return str(self.request.getfixturevalue(fixture).url)

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.__exit__(None, None, None)


def _mori_failing_with(cause: str, request: pytest.FixtureRequest) -> _Failing:
    return _Failing(cause, request)


def test_network_down_ends_the_command_within_seconds(manifest: Path) -> None:
    """The console script itself: one line and exit 1, the traceback only with --debug."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MORI_", "PREFECT_"))}
    env.update(MORI_API_KEY=KEY, MORI_API_URL="https://nonexistent.invalid")
    command = [str(BIN / "mori-pipeline"), "run", "--manifest", str(manifest)]
    started = time.monotonic()
    plain = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    elapsed = time.monotonic() - started
    assert plain.returncode == 1
    assert plain.stderr == (
        "error: cannot resolve nonexistent.invalid (DNS): check MORI_API_URL and the network\n"
    )
    assert plain.stdout == ""
    assert elapsed < 15
    debug = subprocess.run(
        [command[0], "--debug", *command[1:]], env=env, capture_output=True, text=True, timeout=60
    )
    assert debug.returncode == 1
    assert "Traceback (most recent call last)" in debug.stderr
    assert debug.stderr.splitlines()[-1].startswith("error: cannot resolve nonexistent.invalid")
    assert not (manifest.parent / "audit").exists()


def test_a_passing_fault_at_mori_is_a_warning(capsys: pytest.CaptureFixture[str]) -> None:
    """A 503 says nothing about the configuration: the run's retries handle it."""
    config = EmulatorConfig(api_keys=frozenset({KEY}), faults="any:503=1")
    with EmulatorServer(config) as server:
        check_mori(Settings(api_url=server.url, api_key=KEY))
    err = capsys.readouterr().err
    assert err.startswith("warning: MORI at ") and "the run goes on" in err


def test_no_credentials_is_one_line(
    mori_env: pytest.MonkeyPatch, manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mori_env.delenv("MORI_API_KEY")
    assert main(["run", "--manifest", str(manifest)]) == 1
    assert _one_line(capsys).startswith("error: no MORI credentials: set MORI_API_KEY")


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        (
            ["run", "--manifest", "{tmp}/m.csv"],
            {"MORI_TIMEOUT_SECONDS": "soon"},
            "error: timeout-seconds: Input should be a valid number",
        ),
        (
            ["receiver", "--audit", "/proc/no-such-dir/audit", "--no-prefect"],
            {"MORI_WEBHOOK_SECRET": "s"},
            "error: No such file or directory: /proc/no-such-dir",
        ),
        (
            ["ledger", "migrate", "--from", "{tmp}/none.sqlite", "--to", "{tmp}/none.sqlite"],
            {},
            "error: ",
        ),
    ],
    ids=["run-bad-variable", "receiver-unwritable", "ledger-same-place"],
)
def test_commands_fail_in_one_line_and_debug_adds_the_traceback(
    mori_env: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    env: dict[str, str],
    expected: str,
) -> None:
    for name, value in env.items():
        mori_env.setenv(name, value)
    args = [arg.replace("{tmp}", str(tmp_path)) for arg in argv]
    assert main(args) == 1
    assert _one_line(capsys).startswith(expected)
    if argv[0] == "ledger":  # its own one-line handling: no traceback to add
        return
    assert main(["--debug", *args]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert err.splitlines()[-1].startswith(expected)


@pytest.mark.parametrize(
    "argv",
    [["bootstrap"], ["report", "--audit", "{tmp}/audit"]],
    ids=["bootstrap", "report"],
)
def test_prefect_out_of_reach_is_one_line(tmp_path: Path, argv: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    api = f"http://127.0.0.1:{closed_port()}/api"
    env.update(PREFECT_API_URL=api, PREFECT_HOME=str(tmp_path / "home"))
    args = [arg.replace("{tmp}", str(tmp_path)) for arg in argv]
    done = subprocess.run(
        [str(BIN / "mori-pipeline"), *args], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: cannot reach the Prefect API at {api}: check PREFECT_API_URL "
        "(is `prefect server start` running?)"
    )
    assert "Traceback" not in done.stderr
