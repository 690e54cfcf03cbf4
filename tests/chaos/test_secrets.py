"""Secrets stay secret under chaos (invariant 6 of docs/ARCHITECTURE.md).

A chaos-style run (~200 images, a third of them URL rows, HTTP faults on every endpoint so errors
and retries happen, webhook faults, a bad row, a URL MORI cannot fetch so an order fails at MORI)
in-process, then a second batch through the ``mori-pipeline run`` CLI with DEBUG logging. Then
EVERYTHING they wrote is searched: every file under the work folder (audit Parquet as bytes and
decoded, the ledger's SQLite files, outputs' names), every log record (caplog at DEBUG), the
test process's and the subprocess's output, and what Prefect stored (artifacts, logs, flow and
task run states, and the harness's database file itself) for the API key, the webhook secret and
every presigned-URL signature the emulator issued (recorded as it issued them), plus any
``sig=`` / ``expires=`` query string at all.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from deployments.stack import static_files
from mori.emulator import EmulatorConfig, EmulatorServer

from .helpers import API_KEY, ChaosStack, child_env, cli, make_corpus, write_csv

FAULTS = (
    "any:500=0.05,any:503=0.05,any:429=0.05,any:timeout=0.05,any:drop=0.05,any:reset=0.05,"
    "webhook:badsig=0.2,webhook:dup=0.2,webhook:delay=0.1"
)
HEX64 = re.compile(r"[0-9a-f]{64}")
PRESIGNED_QUERY = re.compile(r"[?&](?:sig|expires)=")
DEBUG_LOGGERS = ("mori", "httpx", "prefect", "tasks", "flows")


def files_under(root: Path) -> Iterator[tuple[str, str]]:
    """Every file below ``root`` as text: raw bytes (latin-1), and Parquet decoded too."""
    for path in sorted(root.rglob("*")):
        yield f"name {path}", str(path.relative_to(root))
        if not path.is_file():
            continue
        raw = path.read_bytes()
        yield f"bytes {path}", raw.decode("latin-1")
        if path.suffix == ".parquet":
            table = pq.read_table(path).to_pandas()
            yield f"parquet {path}", table.to_csv(index=False)


def prefect_records(run_ids: Iterable[str]) -> Iterator[tuple[str, str]]:
    """What the Prefect API holds about the runs: artifacts, logs, flow and task run states."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        LogFilter,
        LogFilterFlowRunId,
    )
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()
    ids = [__import__("uuid").UUID(r) for r in run_ids]
    runs = FlowRunFilter(id=FlowRunFilterId(any_=ids))
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(flow_run_filter=runs)
        assert artifacts, "the runs published no artifact"
        for art in artifacts:
            yield f"artifact {art.key}", json.dumps(art.model_dump(mode="json"))
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=ids)))
        assert logs, "the runs sent no log to the API"
        for log in logs:
            yield "api log", log.message
        for run in client.read_flow_runs(flow_run_filter=runs):
            yield f"flow run {run.id}", json.dumps(run.model_dump(mode="json"))
            for state in client.read_flow_run_states(run.id):
                yield f"flow run state {run.id}", json.dumps(state.model_dump(mode="json"))
        for task in client.read_task_runs(flow_run_filter=runs):
            yield f"task run {task.name}", json.dumps(task.model_dump(mode="json"))


def prefect_database() -> Iterator[tuple[str, str]]:
    """The harness's SQLite database (and WAL): everything the Prefect API stored.

    Searched for the exact secrets only: Prefect seeds it with block-type documentation that
    holds a placeholder ``...&sig=SIGNATURE`` URL, so the generic query pattern does not apply.
    """
    from prefect.settings import PREFECT_SERVER_DATABASE_CONNECTION_URL

    url = str(PREFECT_SERVER_DATABASE_CONNECTION_URL.value())
    path = Path(url.split(":///", 1)[1])
    for candidate in (path, path.with_name(path.name + "-wal")):
        if candidate.exists():
            yield f"prefect db {candidate.name}", candidate.read_bytes().decode("latin-1")


def leaks(
    haystacks: Iterable[tuple[str, str]],
    literals: set[str],
    hex_secrets: set[str],
    any_query: bool = True,
) -> list[str]:
    """Where any secret (or, with ``any_query``, any presigned query string) appears."""
    found = []
    for where, text in haystacks:
        for literal in literals:
            if literal in text:
                found.append(f"{literal[:12]}… in {where}")
        for hit in set(HEX64.findall(text)) & hex_secrets:
            found.append(f"signature/secret {hit[:8]}… in {where}")
        if any_query and (match := PRESIGNED_QUERY.search(text)):
            start = max(0, match.start() - 60)
            found.append(f"presigned query in {where}: …{text[start : match.end() + 20]!r}")
    return found


@pytest.mark.slow
def test_no_secret_in_anything_a_chaos_run_wrote(
    prefect: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    from flows.protect import protect

    for name in DEBUG_LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    work = tmp_path / "work"
    rows = make_corpus(work, 200, 0.33, seed=21)
    rows += [
        {"source": "images/missing.jpg", "id": "missing", "batch": "bad"},
        {"source": "http://{host}/gone-404.jpg", "id": "dead-url", "batch": "bad"},
    ]
    second = make_corpus(work, 40, 0.0, seed=22, prefix="cli")

    with static_files(work / "web") as host:
        manifest = write_csv(work / "manifest.csv", rows, host)
        with ChaosStack(
            ledger_path=work / "audit" / "ledger.sqlite",
            faults=FAULTS,
            seed=5,
            url_hosts=frozenset({host}),
        ) as stack:
            state = protect(
                manifest=str(manifest),
                order_size=20,
                max_concurrent_orders=8,
                poll_interval_seconds=0.3,
                wait_timeout_seconds=120,
                allowed_private_hosts=[host],
                return_state=True,
            )
            assert state.is_completed(), state.message
            summary = state.result()
            env = child_env(
                prefect,
                stack.env
                | {
                    "PREFECT_LOGGING_LEVEL": "DEBUG",
                    "PREFECT_LOGGING_ROOT_LEVEL": "DEBUG",
                    "PREFECT_LOGGING_EXTRA_LOGGERS": "mori,httpx,httpcore",
                },
            )
            manifest2 = write_csv(work / "manifest-cli.csv", second)
            child = cli(["run", "--manifest", str(manifest2), "--order-size", "20"], env, work)
            webhook_secret = stack.env["MORI_WEBHOOK_SECRET"]
            signatures = set(stack.issued_signatures)
            stats = stack.stats()

    # The run really met errors and retries, and really issued signed URLs.
    assert summary.count("failed") >= 2 and summary.count("processed") > 150, summary.counts
    assert sum(stats["faults_injected"].values()) > 20
    assert len(signatures) > 150 and webhook_secret
    assert child.returncode in (0, 2), child.stderr[-2000:]
    assert "mori " in child.stdout + child.stderr, "DEBUG logs of the SDK were not printed"
    out, err = capfd.readouterr()

    run_ids = [summary.run_id]
    run_ids += [
        line.split()[1].rstrip(":") for line in child.stdout.splitlines() if line.startswith("run ")
    ]
    assert len(run_ids) == 2, child.stdout[-2000:]
    haystacks: list[tuple[str, str]] = [
        *files_under(work),
        ("caplog", caplog.text),
        *(("log record", r.getMessage()) for r in caplog.records),
        ("test stdout", out),
        ("test stderr", err),
        ("cli stdout", child.stdout),
        ("cli stderr", child.stderr),
        *prefect_records(run_ids),
    ]
    secrets = {API_KEY, webhook_secret}
    found = leaks(haystacks, secrets, signatures | {webhook_secret})
    database = list(prefect_database())
    found += leaks(database, secrets, signatures | {webhook_secret}, any_query=False)
    with capfd.disabled():
        scanned = sum(len(text) for _, text in haystacks + database)
        print(
            f"\nsecrets: run {summary.counts}, cli exit {child.returncode}; "
            f"{len(signatures)} presigned URLs issued, "
            f"{sum(stats['faults_injected'].values())} faults; searched {len(haystacks)} "
            f"texts + the Prefect DB, {scanned / 1e6:.1f} MB; leaks: {len(found)}"
        )
    assert found == [], "\n".join(found[:40])


def test_credentials_of_a_refused_url_row_are_not_echoed(
    prefect: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.protect import protect

    monkeypatch.setenv("MORI_API_KEY", API_KEY)
    password, token = "pw-hunter2-XYZ", "tok-SECRET-987"
    manifest = write_csv(
        tmp_path / "manifest.csv",
        [
            {"source": f"https://alice:{password}@cdn.example.com/a.jpg"},
            {"source": f"https://{token}@cdn.example.com/b.jpg"},
        ],
    )
    # MORI answers the run's preflight, and is sent nothing else: no row is valid
    with EmulatorServer(EmulatorConfig(api_keys=frozenset({API_KEY}))) as mori:
        monkeypatch.setenv("MORI_API_URL", mori.url)
        summary = protect(manifest=str(manifest))
        assert mori.stats()["orders_created"] == 0
    assert summary.failures == {"URL_HAS_CREDENTIALS": 2}
    written = [*files_under(tmp_path / "audit"), *files_under(tmp_path / "output")]
    haystacks = [*written, *prefect_records([summary.run_id])]
    found = leaks(haystacks, {password, token}, set(), any_query=False)
    assert found == [], "\n".join(found)
