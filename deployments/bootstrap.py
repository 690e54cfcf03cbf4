"""``mori-pipeline bootstrap``: what the Prefect server needs before ``prefect deploy --all``.

Idempotent: run it as often as you like; it creates what is missing, corrects what drifted
and leaves the rest alone.

* work pool ``mori-pool`` (type ``process``), whose runs get ``MORI_GLOBAL_RATE_LIMIT=mori-api``
  in their environment, so every worker's MORI client takes its slots from the shared limit;
* global concurrency limit ``mori-api`` carrying MORI's plan (``MORI_RATE_LIMIT_RPM``, default
  60): a token bucket with ``limit + 60 * slot_decay_per_second == rpm`` (see
  :func:`tasks.ratelimit.gcl_settings`), used through ``rate_limit("mori-api", strict=True)``;
* variable ``mori_pipeline_home``: the folder holding this checkout, which ``prefect.yaml``'s
  pull step (``set_working_directory``) reads when a worker starts a run. Kept if it exists;
* block type ``mori-credentials`` (:class:`tasks.blocks.MoriCredentials`), and, when the
  environment holds MORI credentials, the block ``default`` (``MORI_CREDENTIALS_BLOCK``) made
  from them;
* the automations of ``deployments/automations/`` (:mod:`deployments.automations`).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deployments.console import CommandError, guarded, report_error
from mori.settings import Settings
from tasks._prefect import in_sync
from tasks.credentials import BLOCK_TYPE, find_block
from tasks.ratelimit import DEFAULT_LIMIT_NAME, ENV_VAR, gcl_settings

# Prefect is imported inside the functions: ``mori-pipeline --help`` and the CLI's parser stay
# fast (importing prefect takes about a second).

POOL = "mori-pool"
HOME_VARIABLE = "mori_pipeline_home"
#: The plan a limit gets when neither ``--rpm`` nor ``MORI_RATE_LIMIT_RPM`` names one: MORI's
#: smallest (a shared limit must have a value; the client alone may run unlimited).
DEFAULT_RPM = 60
PROJECT_ROOT = Path(__file__).resolve().parents[1]


@dataclass
class BootstrapReport:
    """What :func:`bootstrap` found and did: ``created``, ``updated`` or ``unchanged`` each."""

    actions: dict[str, str] = field(default_factory=dict)
    limit: int = 0
    slot_decay_per_second: float = 0.0

    def lines(self) -> list[str]:
        return [f"{what}: {action}" for what, action in self.actions.items()]


def bootstrap(
    rpm: int,
    *,
    pool: str = POOL,
    limit_name: str = DEFAULT_LIMIT_NAME,
    home: Path | None = PROJECT_ROOT,
    credentials: Settings | None = None,
    automations: Path | None = None,
) -> BootstrapReport:
    """Create or correct the work pool, the rate-limit GCL, the variables, the
    ``mori-credentials`` block type (and block, from ``credentials``) and the automations
    under ``automations`` on the server ``PREFECT_API_URL`` points at."""
    from prefect import get_client

    from deployments.automations import apply_automation

    report = BootstrapReport()
    report.limit, report.slot_decay_per_second = gcl_settings(rpm)
    with get_client(sync_client=True) as client:
        report.actions[f"work pool {pool}"] = _ensure_pool(client, pool, limit_name)
        report.actions[f"concurrency limit {limit_name}"] = _ensure_limit(
            client, limit_name, report.limit, report.slot_decay_per_second
        )
        if home is not None:
            report.actions[f"variable {HOME_VARIABLE}"] = _ensure_variable(
                client, HOME_VARIABLE, str(home)
            )
        report.actions[f"block type {BLOCK_TYPE}"] = _ensure_block_type(client)
        if credentials is not None:
            name = credentials.credentials_block
            report.actions[f"block {BLOCK_TYPE}/{name}"] = _ensure_block(name, credentials)
        for path in sorted(automations.glob("*.yaml")) if automations is not None else []:
            automation, action = apply_automation(path, client)
            report.actions[f"automation {automation}"] = action
    return report


def _ensure_pool(client: Any, name: str, limit_name: str) -> str:
    from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    try:
        pool = client.read_work_pool(name)
    except ObjectNotFound:
        template = ProcessWorker.get_default_base_job_template()
        _set_env_default(template, {ENV_VAR: limit_name})
        client.create_work_pool(
            WorkPoolCreate(name=name, type="process", base_job_template=template)
        )
        return "created"
    if pool.type != "process":
        raise CommandError(f"work pool {name!r} exists with type {pool.type!r}, not 'process'")
    template = pool.base_job_template
    env = _env_default(template)
    if env.get(ENV_VAR) == limit_name:
        return "unchanged"
    _set_env_default(template, {**env, ENV_VAR: limit_name})
    client.update_work_pool(name, WorkPoolUpdate(base_job_template=template))
    return "updated"


def _env_default(template: dict[str, Any]) -> dict[str, Any]:
    env = template.get("variables", {}).get("properties", {}).get("env", {})
    return dict(env.get("default") or {})


def _set_env_default(template: dict[str, Any], env: dict[str, Any]) -> None:
    template["variables"]["properties"]["env"]["default"] = env


def _ensure_limit(client: Any, name: str, limit: int, decay: float) -> str:
    from prefect.client.schemas.actions import (
        GlobalConcurrencyLimitCreate,
        GlobalConcurrencyLimitUpdate,
    )
    from prefect.exceptions import ObjectNotFound

    try:
        current = client.read_global_concurrency_limit_by_name(name)
    except ObjectNotFound:
        client.create_global_concurrency_limit(
            GlobalConcurrencyLimitCreate(name=name, limit=limit, slot_decay_per_second=decay)
        )
        return "created"
    if (
        current.limit == limit
        and current.active
        and abs((current.slot_decay_per_second or 0.0) - decay) < 1e-9
    ):
        return "unchanged"
    client.update_global_concurrency_limit(
        name,
        GlobalConcurrencyLimitUpdate(limit=limit, slot_decay_per_second=decay, active=True),
    )
    return "updated"


def _ensure_variable(client: Any, name: str, value: str) -> str:
    from prefect.client.schemas.actions import VariableCreate

    if client.read_variable_by_name(name) is not None:
        return "unchanged (kept)"
    client.create_variable(VariableCreate(name=name, value=value))
    return "created"


def _ensure_block_type(client: Any) -> str:
    """Register :class:`~tasks.blocks.MoriCredentials` (its type and current schema)."""
    from prefect.exceptions import ObjectNotFound

    from tasks.blocks import MoriCredentials

    try:
        client.read_block_type_by_slug(BLOCK_TYPE)
    except ObjectNotFound:
        in_sync(MoriCredentials.register_type_and_schema)
        return "created"
    try:
        client.read_block_schema_by_checksum(
            MoriCredentials._calculate_schema_checksum(),
            version=MoriCredentials.get_block_schema_version(),
        )
        action = "unchanged"
    except ObjectNotFound:
        action = "updated"
    # registering again also refreshes the description shown in the UI
    in_sync(MoriCredentials.register_type_and_schema)
    return action


def _ensure_block(name: str, settings: Settings) -> str:
    """Save the environment's credentials (and URL, generation, webhook secret) as ``name``."""
    from tasks.blocks import MoriCredentials

    if not settings.has_credentials:
        return "skipped (no MORI credentials in the environment)"
    wanted = MoriCredentials.from_settings(settings)
    current = find_block(name)
    if current is not None and current.same_as(wanted):
        return "unchanged"
    in_sync(wanted.save, name, overwrite=True)
    return "updated" if current is not None else "created"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``bootstrap`` subcommand's options."""
    parser.add_argument(
        "--rpm",
        type=int,
        help="MORI plan's requests per minute (default $MORI_RATE_LIMIT_RPM or 60)",
    )
    parser.add_argument("--pool", default=POOL, help="process work pool to create")
    parser.add_argument("--limit-name", default=DEFAULT_LIMIT_NAME, help="global concurrency limit")
    parser.add_argument(
        "--home", default=str(PROJECT_ROOT), help="checkout the workers run flows from"
    )


def run(args: argparse.Namespace) -> int:
    """``mori-pipeline bootstrap``: print what was created, updated or left alone."""
    from deployments.automations import AUTOMATIONS

    try:
        settings = Settings()
        rpm = args.rpm if args.rpm is not None else settings.rpm or DEFAULT_RPM
        if rpm < 1:
            raise CommandError("--rpm must be >= 1")
    except (ValueError, CommandError) as exc:  # a bad option or variable
        return report_error(exc, debug=getattr(args, "debug", False))
    report = bootstrap(
        rpm,
        pool=args.pool,
        limit_name=args.limit_name,
        home=Path(args.home).resolve(),
        credentials=settings,
        automations=AUTOMATIONS,
    )
    for line in report.lines():
        print(line)
    print(
        f"rate limit {args.limit_name}: {report.limit} slots, "
        f"{report.slot_decay_per_second:g}/s decay (plan: {rpm} requests/minute)"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deployments.bootstrap", description=__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    return guarded(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
