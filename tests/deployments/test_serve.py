"""``deployments/serve.py`` serves exactly the deployments ``prefect.yaml`` declares."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from deployments.serve import NAMES, PROJECT_ROOT, build, deployment_specs, take_over


def _schedules(deployment: Any) -> list[Any]:
    return [s.schedule for s in deployment.schedules or []]


def test_every_yaml_deployment_is_served_as_declared() -> None:
    specs = deployment_specs()
    assert set(specs) == set(NAMES)
    served = {d.name: d for d in build(manifest="/m/manifest.csv", audit="/m/audit")}
    for name, spec in specs.items():
        deployment = served[name]
        assert deployment.entrypoint == spec["entrypoint"]
        assert deployment.description == spec["description"]
        assert deployment.tags == spec["tags"]
        assert set(deployment.parameters) >= set(spec.get("parameters") or {})
        declared = spec.get("schedules") or []
        schedules = _schedules(deployment)
        assert len(schedules) == len(declared)
        for schedule, want in zip(schedules, declared, strict=True):
            if "cron" in want:
                assert (schedule.cron, schedule.timezone) == (want["cron"], want["timezone"])
            else:
                assert schedule.interval == timedelta(seconds=want["interval"])
        limit = spec.get("concurrency_limit")
        if limit is None:
            assert deployment.concurrency_limit is None
        else:
            assert deployment.concurrency_limit == limit["limit"]
            strategy = deployment.concurrency_options.collision_strategy
            assert strategy.value == limit["collision_strategy"]


def test_command_line_overrides() -> None:
    served = {
        d.name: d
        for d in build(
            manifest="/m/manifest.csv",
            audit="/m/audit",
            output="s3://bucket/out",
            cron="30 3 * * *",
            timezone="Europe/Berlin",
        )
    }
    protect = served["protect"]
    assert protect.parameters == {
        "manifest": "/m/manifest.csv",
        "audit": "/m/audit",
        "output": "s3://bucket/out",
        "fan_out": 4,
    }
    assert served["protect-orders"].parameters == {
        "audit": "/m/audit",
        "output": "s3://bucket/out",
        "lease_seconds": 60,
    }
    (schedule,) = _schedules(protect)
    assert (schedule.cron, schedule.timezone) == ("30 3 * * *", "Europe/Berlin")
    assert served["finalize"].parameters == {"audit": "/m/audit", "output": "s3://bucket/out"}
    assert served["report"].parameters == {"audit": "/m/audit"}


def test_without_a_manifest_protect_runs_only_by_hand() -> None:
    (protect,) = build(manifest=None, audit="/m/audit", only=["protect"])
    assert _schedules(protect) == []
    assert "manifest" not in protect.parameters


def test_protect_fans_out_only_where_its_child_runs_are_served() -> None:
    (alone,) = build(manifest=None, audit="/m/audit", only=["protect"])
    assert alone.parameters["fan_out"] == 0
    both = build(manifest=None, audit="/m/audit", only=["protect", "protect-orders"])
    assert [d.name for d in both] == ["protect", "protect-orders"]
    assert both[0].parameters["fan_out"] == deployment_specs()["protect"]["parameters"]["fan_out"]


def test_yaml_locations_are_relative_to_the_checkout(tmp_path: Path) -> None:
    specs = deployment_specs()
    specs["finalize"] = {**specs["finalize"], "parameters": {"output": "data/x/out"}}
    (finalize,) = build(manifest=None, audit=str(tmp_path), only=["finalize"], specs=specs)
    assert finalize.parameters == {
        "audit": str(tmp_path),
        "output": str(PROJECT_ROOT / "data" / "x" / "out"),
    }


def test_a_yaml_key_serve_cannot_apply_is_refused(tmp_path: Path) -> None:
    broken = tmp_path / "prefect.yaml"
    broken.write_text(
        "deployments:\n  - name: protect\n    entrypoint: flows/protect.py:protect\n"
        "    triggers: []\n",
        encoding="utf-8",
    )
    with pytest.raises(ValueError, match="triggers"):
        deployment_specs(broken)


def test_a_deployment_prefect_deploy_made_can_be_served(
    prefect_api: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A work pool's deployment (pull steps, no code location) taken over by ``serve`` loads
    its flow; without ``take_over`` its runs would look for their code in a folder "None"."""
    from prefect import get_client
    from prefect.client.schemas.actions import DeploymentUpdate
    from prefect.flows import load_flow_from_flow_run

    monkeypatch.chdir(PROJECT_ROOT)
    (served,) = build(manifest=None, audit=str(tmp_path / "audit"), only=["report"])
    served.apply()
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("report/report")
        # what `prefect deploy` leaves: pull steps and no path
        pull = [{"prefect.deployments.steps.set_working_directory": {"directory": "."}}]
        client.update_deployment(deployment.id, DeploymentUpdate(pull_steps=pull))
        cleared = httpx.patch(
            f"{prefect_api.api_url}/deployments/{deployment.id}", json={"path": None}
        )
        assert cleared.is_success, cleared.text
        assert client.read_deployment(deployment.id).path is None

        assert take_over([served]) == ["report/report"]
        assert take_over([served]) == []  # once taken over, there is nothing to do
        served.apply()  # what serve() does first: the pull steps go, the path stays
        deployment = client.read_deployment(deployment.id)
        assert deployment.pull_steps is None and deployment.path == str(PROJECT_ROOT)
        run = client.create_flow_run_from_deployment(deployment.id)

    flow = asyncio.run(load_flow_from_flow_run(run))
    assert flow.name == "report"
