"""The benchmarks still run: each one, small, in its own process, exactly as BENCHMARKS.md says.

The figures are not judged here (timing belongs in ``bench/``, on a quiet machine); what is
checked is that every benchmark completes its runs and reports figures that add up.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.paths import REPO

pytestmark = pytest.mark.slow


def run_bench(name: str, tmp_path: Path, *args: str) -> tuple[str, dict[str, Any]]:
    """``python -m bench.<name> ARGS --json``: its stdout and its figures."""
    out = tmp_path / f"{name}.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MORI_"))}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")  # never the suite's Prefect server
    proc = subprocess.run(
        [sys.executable, "-m", f"bench.{name}", *args, "--json", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout, json.loads(out.read_text())


def test_manifest_bench(tmp_path: Path) -> None:
    stdout, figures = run_bench(
        "manifest", tmp_path, "--rows", "3000", "--file-rows", "40", "--repeats", "1",
        "--backends", "sqlite,postgresql", "--extra-columns", "1",
        "--against", str(REPO), "--against-rows", "3000",  # this checkout against itself
    )  # fmt: skip
    cases = figures["cases"]
    for backend in ("sqlite", "postgresql"):
        urls = cases[f"3,000 URL rows, {backend}"][0]
        assert urls["plan"]["rows"] == urls["protect"]["rows"] == urls["rerun"]["rows"] == 3000
        images = urls["ledger"]["images"]
        assert 0.99 * 3000 < images < 3000  # the generator plants a few bad rows and duplicates
        assert urls["plan"]["orders"] == urls["protect"]["orders"] == math.ceil(images / 100)
        assert (urls["rerun"]["orders"], urls["rerun"]["skipped"]) == (0, images)  # all known
        assert urls["ledger_done"]["images"] == images and urls["ledger"]["bytes"] > 0
        assert all(urls[stage]["peak_mib"] > 0 for stage in ("plan", "protect", "rerun"))
        other = figures["against"]["cases"][f"3,000 URL rows, {backend}"][0]
        assert other["protect"]["orders"] == urls["protect"]["orders"]
        assert f"3,000 URL rows, {backend}, rerun: time × " in stdout
    files = cases["40 local files, sqlite"][0]
    assert files["protect"]["orders"] == 1 and files["rerun"]["skipped"] == 40
    assert "rerun = protect again" in stdout and "CPU speed" in stdout


def test_throughput_bench(tmp_path: Path) -> None:
    stdout, figures = run_bench("throughput", tmp_path, "--images", "100", "--repeats", "1")
    assert list(figures["sizes"]) == ["160x120", "640x480"] and figures["setting"] == "defaults"
    for name, size in figures["sizes"].items():
        ((base, pipe),) = size["pairs"]
        assert size["images"] == 100
        assert base["api_requests"] > 0 and base["images_per_second"] > 0
        assert base["process_cpu"] > 0 and pipe["process_cpu"] > 0
        assert pipe["images_per_second"] > 0 and pipe["prefect_server_cpu"] > 0
        ratio = pipe["images_per_second"] / base["images_per_second"]
        assert size["ratio"] == pytest.approx(ratio)
        assert f"{name}: pipeline / baseline = " in stdout
    assert figures["sizes"]["640x480"]["kb"] > 5 * figures["sizes"]["160x120"]["kb"]


def test_overhead_bench(tmp_path: Path) -> None:
    stdout, figures = run_bench(
        "overhead", tmp_path, "--images", "200", "--repeats", "1", "--rows", "2000"
    )
    ((flow_run, plain),) = figures["pairs"]
    assert flow_run["orders"] == 2 and plain["orders"] == 2
    assert flow_run["task_runs"]["process-order"] == 2  # one task run per order
    assert sum(flow_run["requests"].values()) > 0 and not plain.get("requests")
    assert set(figures["probe"]) == {
        "plain parameter (walked)",
        "quote(items), as protect",
        "plain function",
    }
    assert "Prefect's cost per order" in stdout


def test_report_bench(tmp_path: Path) -> None:
    stdout, figures = run_bench(
        "report", tmp_path, "--rows", "30000", "--repeats", "1", "--against", str(REPO)
    )  # this checkout against itself
    (run,) = figures["30,000 rows"]
    assert run["images"] == 30_000 and run["files"] == 3 * 2  # two runs, three tables
    assert 0 < run["failed"] < run["processed"] < run["images"]
    assert 0 < run["latency_p50_seconds"] < run["latency_p95_seconds"]
    assert run["peak_mib"] > 0 and run["total_s"] >= run["build_s"] > 0
    (other,) = figures["against"]["30,000 rows"]
    assert other["outputs_sha256"] == run["outputs_sha256"]
    assert "CPU speed" in stdout and "30,000 rows: time × " in stdout and "identical" in stdout


def test_scaleout_bench(tmp_path: Path) -> None:
    stdout, figures = run_bench("scaleout", tmp_path, "--quick")
    runs = figures["runs"]
    assert [r["workers"] for r in runs] == [1, 2]
    for run in runs:
        assert run["images"] == 300 and run["rate_limited"] == 0
        assert run["images_per_second"] > 0 and run["requests_per_minute"] > 0
        assert run["cpu_ms_per_image"]["workers"] > 0
        assert run["cpu_ms_per_image"]["Prefect server"] > 0
    assert figures["plans"] == []
    assert "CPU speed" in stdout and "not a speed-up" in stdout
