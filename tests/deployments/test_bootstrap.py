"""``mori-pipeline bootstrap`` against a real server: idempotent, and it corrects drift."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from deployments.bootstrap import HOME_VARIABLE, POOL, add_arguments, bootstrap, run
from tasks.ratelimit import DEFAULT_LIMIT_NAME, ENV_VAR, gcl_settings


def _state() -> dict[str, Any]:
    from prefect import get_client

    with get_client(sync_client=True) as client:
        pools = [p for p in client.read_work_pools() if p.name == POOL]
        limits = [
            g
            for g in client.read_global_concurrency_limits(limit=200)
            if g.name == DEFAULT_LIMIT_NAME
        ]
        variable = client.read_variable_by_name(HOME_VARIABLE)
    return {"pools": pools, "limits": limits, "variable": variable}


def test_bootstrap_twice_gives_one_pool_one_limit(prefect_api: Any, tmp_path: Path) -> None:
    first = bootstrap(300, home=tmp_path)
    second = bootstrap(300, home=tmp_path / "elsewhere")

    # the session's server may hold what an earlier test set up, differently
    assert set(first.actions.values()) <= {"created", "updated", "unchanged", "unchanged (kept)"}
    assert set(second.actions.values()) <= {"unchanged", "unchanged (kept)"}, second.actions
    state = _state()
    assert len(state["pools"]) == 1 and len(state["limits"]) == 1
    pool, gcl = state["pools"][0], state["limits"][0]
    assert pool.type == "process"
    env = pool.base_job_template["variables"]["properties"]["env"]["default"]
    assert env == {ENV_VAR: DEFAULT_LIMIT_NAME}
    limit, decay = gcl_settings(300)
    assert (gcl.limit, gcl.slot_decay_per_second, gcl.active) == (limit, decay, True)
    assert limit + 60 * decay == pytest.approx(300)
    assert state["variable"] is not None  # kept as first set: a user's edit is never undone


def test_bootstrap_corrects_a_changed_plan(prefect_api: Any, tmp_path: Path) -> None:
    bootstrap(300, home=tmp_path)
    report = bootstrap(1000, home=tmp_path)
    assert report.actions[f"concurrency limit {DEFAULT_LIMIT_NAME}"] == "updated"
    gcl = _state()["limits"][0]
    assert (gcl.limit, gcl.slot_decay_per_second) == gcl_settings(1000) == (100, 15.0)
    assert bootstrap(1000, home=tmp_path).actions[f"concurrency limit {DEFAULT_LIMIT_NAME}"] == (
        "unchanged"
    )


def test_bootstrap_command(
    prefect_api: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    monkeypatch.setenv("MORI_RATE_LIMIT_RPM", "60")
    assert run(parser.parse_args([])) == 0
    out = capsys.readouterr().out
    assert f"work pool {POOL}:" in out
    assert "6 slots, 0.9/s decay (plan: 60 requests/minute)" in out
    monkeypatch.setenv("MORI_RATE_LIMIT_RPM", "lots")
    assert run(parser.parse_args([])) == 1


def test_gcl_settings_never_exceed_the_plan_in_a_minute() -> None:
    for rpm in (1, 2, 10, 60, 300, 1000, 5000):
        limit, decay = gcl_settings(rpm)
        assert limit >= 1 and decay > 0
        if rpm > 1:
            assert limit + 60 * decay <= rpm + 1e-6
    with pytest.raises(ValueError):
        gcl_settings(0)
