"""The ``report`` flow in Prefect's test harness: its artifacts, its run name, the CLI entry, and
the report of a real demo run (emulator, S3, receiver) whose charts must be real images."""

from __future__ import annotations

from pathlib import Path
from uuid import UUID

import pyarrow.parquet as pq
import pytest

from flows.report import main_report, report
from mori.report.charts import CHARTS, COLOURS

from .test_outputs import SERIES, assert_real_chart


def _artifacts(flow_run_id: UUID) -> dict[str, object]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
        name = client.read_flow_run(flow_run_id).name
    return {"name": name, **{a.key: a for a in found if a.key}}


def test_the_flow_writes_the_report_and_publishes_artifacts(
    prefect: str, audit: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    state = report(audit=str(audit), out=str(out), return_state=True)
    assert state.is_completed(), state.message
    files = state.result()
    assert Path(files.html).is_file() and files.html_link.startswith("file://")
    assert pq.read_table(files.summary).num_rows == 5
    found = _artifacts(state.state_details.flow_run_id)
    assert found["name"] == f"report {audit}"
    summary, table, link = (
        found["audit-report-summary"],
        found["audit-report-runs"],
        found["audit-report"],
    )
    assert summary.type == "markdown" and "| images (rows) | 15 |" in summary.data
    assert table.type == "table" and "run-a" in str(table.data)
    assert f"({files.html_link})" in str(link.data)  # Prefect stores a link as markdown


def test_the_flow_fails_clearly_on_an_empty_audit(prefect: str, tmp_path: Path) -> None:
    state = report(audit=str(tmp_path / "nothing"), days=3, return_state=True)
    assert state.is_failed() and "no audit rows" in (state.message or "")


def test_the_flow_refuses_bad_days(prefect: str, audit: Path) -> None:
    state = report(audit=str(audit), days=0, return_state=True)
    assert not state.is_completed()


def test_main_report(prefect: str, audit: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main_report(str(audit)) == 0  # default out: report/ beside the audit
    assert (audit.parent / "report" / "report.html").is_file()
    assert "report.html" in capsys.readouterr().out
    assert main_report(str(audit.parent / "missing")) == 1
    assert "no audit rows" in capsys.readouterr().err
    assert main_report(str(audit), days=0) == 1


def test_the_report_of_a_real_demo_run_has_real_charts(
    prefect: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from deployments.demo import prepare, run_demo

    workdir = tmp_path_factory.mktemp("demo")
    manifest = prepare(workdir, 8)
    (workdir / "images" / "notes.png").write_text("not an image", encoding="utf-8")
    with manifest.open("a", encoding="utf-8") as fh:  # two bad rows: the failures chart has data
        fh.write("images/missing.jpg,bad-1,demo\nimages/notes.png,bad-2,demo\n")
    run_demo(workdir, 8, processing_seconds=0.1)
    run_demo(workdir, 8, processing_seconds=0.1)  # the rerun: skipped rows, no new orders

    state = report(audit=str(workdir / "audit"), return_state=True)
    assert state.is_completed(), state.message
    out = workdir / "report"
    for name in CHARTS:
        assert_real_chart((out / f"{name}.png").read_bytes(), SERIES[name])
    assert_real_chart((out / "daily_volume.png").read_bytes(), COLOURS["skipped"])
    run_rows = pq.read_table(out / "summary.parquet").to_pandas()
    runs = run_rows[run_rows["grain"] == "run"].sort_values("started_at")
    assert list(runs["images"]) == [10, 10]
    assert list(runs["processed"]) == [8, 0] and list(runs["skipped"]) == [0, 8]
    assert list(runs["failed"]) == [2, 2]
    codes = dict(runs.iloc[0]["failed_by_code"])
    assert codes.get("FILE_NOT_FOUND") == 1 and sum(codes.values()) == 2
    first = runs.iloc[0]
    assert first["orders"] == 2 and first["api_requests"] > 0
    assert 0 < first["latency_p50_seconds"] <= first["latency_p95_seconds"] < 60
