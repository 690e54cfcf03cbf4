"""``mori-pipeline plan``: the numbers a run would have, and nothing done -- no request to MORI
beyond a sign-in, no ledger created, nothing recorded in one that exists, no Prefect."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from deployments.cli import main
from mori.batch import manifest
from mori.batch.ledger import Ledger
from mori.batch.plan import plan_and_record
from mori.batch.storage import Storage
from mori.emulator.config import EmulatorConfig
from mori.emulator.server import EmulatorServer
from tests.support.images import write_image
from tests.support.paths import REPO

EXAMPLES = REPO / "data" / "examples"
API_KEY = "plan-test-key"
LOGIN = ("ana@example.com", "pa55-word")
PLAN_KEYS = {
    "rows",
    "new_images",
    "known_images",
    "failed_before",
    "in_open_orders",
    "bad_rows",
    "bad_rows_by_code",
    "orders",
    "resumed_orders",
    "api_calls",
    "rate_per_minute",
    "rate_source",
    "estimated_minutes",
    "retry_failed",
    "max_new_images",
    "refusal",
}


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorServer]:
    config = EmulatorConfig(
        api_keys=frozenset({API_KEY}), logins={LOGIN[0]: LOGIN[1]}, usage_limit=7
    )
    with EmulatorServer(config) as server:
        yield server


@pytest.fixture
def examples(tmp_path: Path) -> Path:
    """A copy of ``data/examples`` (6 rows: 5 images of 5 formats, one missing file)."""
    return Path(shutil.copytree(EXAMPLES, tmp_path / "examples"))


@pytest.fixture
def mori_env(emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> EmulatorServer:
    for name in ("MORI_EMAIL", "MORI_PASSWORD", "MORI_RATE_LIMIT_RPM", "MORI_LEDGER_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MORI_API_URL", emulator.url)
    monkeypatch.setenv("MORI_API_KEY", API_KEY)
    return emulator


def requests(server: EmulatorServer) -> dict[str, int]:
    """The emulator's request counts, read over HTTP as anyone would."""
    counts: dict[str, int] = httpx.get(f"{server.url}/_emulator/stats").json()["requests"]
    return counts


def plan_json(args: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """Run ``plan --json``: exit 0 and exactly one JSON object on stdout."""
    assert main(["plan", *args, "--json"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    data: dict[str, Any] = json.loads(out)
    return data


def dump(path: Path) -> list[str]:
    """Every statement that rebuilds the SQLite ledger: its whole content."""
    with sqlite3.connect(path) as db:
        return list(db.iterdump())


def test_a_first_plan_touches_neither_mori_nor_the_ledger(
    examples: Path, mori_env: EmulatorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    before = requests(mori_env)
    plan = plan_json(["--manifest", str(examples / "manifest.csv")], capsys)
    assert set(plan) == PLAN_KEYS  # with an API key MORI reports no usage
    assert (plan["rows"], plan["new_images"], plan["bad_rows"]) == (6, 5, 1)
    assert plan["bad_rows_by_code"] == {"FILE_NOT_FOUND": 1}
    assert (plan["orders"], plan["api_calls"]) == (1, 4)
    assert (plan["rate_per_minute"], plan["estimated_minutes"]) == (60, 0.1)
    assert requests(mori_env) == before
    assert not (examples / "audit").exists() and not (examples / "output").exists()


def test_a_plan_reads_an_existing_ledger_and_changes_nothing(
    examples: Path,
    mori_env: EmulatorServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    items = manifest.load(str(examples / "manifest.csv"), Storage())
    ledger_path = examples / "audit" / "ledger.sqlite"
    with Ledger(ledger_path) as ledger:
        plan_and_record(items[:2], ledger)  # an earlier run planned two images, then stopped
        for item in items[:2]:
            ledger.image_done(item.image_key or "", "/out/x.jpg", "0" * 64)
    before, seen = dump(ledger_path), requests(mori_env)
    monkeypatch.setenv("MORI_RATE_LIMIT_RPM", "300")
    plan = plan_json(["--manifest", str(examples / "manifest.csv")], capsys)
    assert (plan["known_images"], plan["new_images"], plan["in_open_orders"]) == (2, 3, 0)
    assert (plan["rate_per_minute"], plan["rate_source"]) == (300, "MORI_RATE_LIMIT_RPM")
    assert dump(ledger_path) == before and requests(mori_env) == seen
    source = plan_json(
        ["--source", str(examples / "images"), "--audit", str(examples / "audit")], capsys
    )
    assert (source["rows"], source["known_images"], source["new_images"]) == (5, 2, 3)
    assert dump(ledger_path) == before  # what the listing read is not recorded either


def test_the_accounts_usage_when_signing_in(
    examples: Path,
    mori_env: EmulatorServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MORI_API_KEY")
    monkeypatch.setenv("MORI_EMAIL", LOGIN[0])
    monkeypatch.setenv("MORI_PASSWORD", LOGIN[1])
    before = requests(mori_env)
    plan = plan_json(["--manifest", str(examples / "manifest.csv")], capsys)
    assert (plan["usage_before"], plan["usage_after"], plan["usage_limit"]) == (0, 5, 7)
    assert plan["refusal"] is None
    after = requests(mori_env)
    assert {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k)} == {
        "login": 1
    }
    for i in range(3):
        write_image(examples / "more" / f"new-{i}.png", "PNG", seed=i)
    over = plan_json(["--source", str(examples)], capsys)  # 8 images, the missing one unlisted
    assert (over["rows"], over["new_images"], over["usage_after"]) == (8, 8, 8)
    assert "past its plan's limit of 7" in over["refusal"]
    assert password_free(capsys)


def password_free(capsys: pytest.CaptureFixture[str]) -> bool:
    captured = capsys.readouterr()
    return LOGIN[1] not in captured.out + captured.err


def test_the_human_table(
    examples: Path, mori_env: EmulatorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["plan", "--manifest", str(examples / "manifest.csv"), "--max-new-images", "4"]) == 0
    )
    out = capsys.readouterr().out
    assert "new images" in out and "FILE_NOT_FOUND" in out and "API calls" in out
    assert "a run would refuse this plan" in out and "--max-new-images" in out


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--manifest", "{d}/missing.csv"], "MANIFEST_NOT_FOUND"),
        (["--manifest", "{d}/images/cat.jpg"], "MANIFEST_UNSUPPORTED_FORMAT"),
        (["--manifest", "{d}/nosource.csv"], "MANIFEST_MISSING_COLUMN"),
        (["--source", "{d}/nowhere"], "SOURCE_NOT_FOUND"),
        (["--manifest", "{d}/manifest.csv", "--source", "{d}"], "exactly one of manifest"),
        ([], "exactly one of manifest"),
        (["--manifest", "{d}/manifest.csv", "--include", "*.jpg"], "need a source"),
        (["--manifest", "{d}/manifest.csv", "--ledger", "mysql://x/y"], "unsupported ledger"),
    ],
)
def test_a_plan_that_cannot_be_made_is_one_line(
    examples: Path,
    mori_env: EmulatorServer,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    code: str,
) -> None:
    (examples / "nosource.csv").write_text("path\na.jpg\n")
    assert main(["plan", *(a.format(d=examples) for a in args), "--json"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and code in lines[0]
    assert not (examples / "audit").exists()


def test_no_prefect_server_is_needed(examples: Path, mori_env: EmulatorServer) -> None:
    script = (
        "import sys\n"
        "from deployments.cli import main\n"
        f"code = main(['plan', '--manifest', {str(examples / 'manifest.csv')!r}, '--json'])\n"
        "assert code == 0, code\n"
        "assert not [m for m in sys.modules if m.split('.')[0] in ('prefect', 'flows')]\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={
            "PATH": "/usr/bin:/bin",
            "MORI_API_URL": mori_env.url,
            "MORI_API_KEY": API_KEY,
            "PREFECT_API_URL": "http://127.0.0.1:9/api",  # nothing listens there
            "HOME": str(examples),
        },
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["new_images"] == 5
