"""Serve every flow from one process: the simplest way to run mori-pipeline with Prefect.

    prefect server start                                   # terminal 1 (UI on :4200)
    mori-pipeline bootstrap                                # once: pool, rate limit, variables
    python -m deployments.serve --manifest data/nightly/manifest.csv    # terminal 2

No work pool and no worker: this process creates the five deployments and runs their flow runs
itself (each in a subprocess), until stopped (their schedules pause on shutdown).

* ``protect/protect``     nightly at 02:00 (``--cron``), manifest from ``--manifest``;
* ``protect-orders/protect-orders``  no schedule: ``protect`` runs start it, once per group
  of their orders (``fan_out``); served here, its runs are subprocesses of this process;
* ``finalize/finalize``   no schedule: the webhook receiver starts it, once per order;
* ``reconcile/reconcile`` every 5 minutes: orders whose webhook never came;
* ``report/report``       daily at 06:00, over the audit tables.

``--only NAME`` (repeatable) serves a subset, e.g. only ``finalize`` beside a worker pool.
``--receiver PORT`` also runs the webhook receiver in this process (``--register-url URL``
registers its public URL with MORI first), so one process is the whole setup.
Set ``MORI_GLOBAL_RATE_LIMIT=mori-api`` to make every run share the rate limit ``bootstrap``
created (needed as soon as a second process talks to MORI with the same key).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from mori.batch.storage import absolute

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PREFECT_YAML = PROJECT_ROOT / "prefect.yaml"
NAMES = ("protect", "protect-orders", "finalize", "reconcile", "report")
DEFAULT_AUDIT = "data/nightly/audit"
#: Keys of a ``prefect.yaml`` deployment this module turns into its served deployment; the
#: work pool is the worker's business, not the ``serve`` process's.
_USED = {"name", "entrypoint", "description", "tags", "parameters", "schedules"}
_USED |= {"concurrency_limit", "work_pool"}
#: Parameters naming a location, made absolute against the checkout.
_LOCATIONS = ("manifest", "source", "audit", "output")


def deployment_specs(path: Path = PREFECT_YAML) -> dict[str, dict[str, Any]]:
    """``prefect.yaml``'s deployments by name (its anchors resolved)."""
    with path.open(encoding="utf-8") as fh:
        document = yaml.safe_load(fh)
    specs = {spec["name"]: spec for spec in document["deployments"]}
    for name, spec in specs.items():
        unknown = set(spec) - _USED
        if unknown:
            raise ValueError(f"prefect.yaml deployment {name!r}: serve cannot apply {unknown}")
    return specs


def build(
    *,
    manifest: str | None,
    audit: str,
    output: str | None = None,
    cron: str | None = None,
    report_cron: str | None = None,
    timezone: str | None = None,
    only: Sequence[str] = NAMES,
    specs: dict[str, dict[str, Any]] | None = None,
) -> list[Any]:
    """The runner deployments to serve (``RunnerDeployment`` objects), in :data:`NAMES` order,
    each built from its ``prefect.yaml`` entry with the command line's overrides: ``audit``
    (and ``output``) for every flow, ``manifest`` for ``protect`` (without one, ``protect`` has
    no schedule and runs only by hand), ``cron``/``report_cron``/``timezone`` for the cron
    schedules."""
    unknown = sorted(set(only) - set(NAMES))
    if unknown:
        raise ValueError(f"unknown flow(s) {unknown}; choose from {list(NAMES)}")
    specs = specs or deployment_specs()
    crons = {"protect": cron, "report": report_cron}
    served = []
    for name in (n for n in NAMES if n in only):
        spec = specs[name]
        params = dict(spec.get("parameters") or {})
        params["audit"] = audit
        if output and name != "report":
            params["output"] = output
        schedules = [_schedule(s, crons.get(name), timezone) for s in spec.get("schedules") or []]
        if name == "protect":
            if manifest:
                params["manifest"] = manifest
            else:
                params.pop("manifest", None)
                schedules = []
            if "protect-orders" not in only:  # nobody here would run its child runs
                params["fan_out"] = 0
        served.append(
            _flow(spec["entrypoint"]).to_deployment(
                name,
                parameters={k: _located(k, v) for k, v in params.items()},
                schedules=schedules or None,
                concurrency_limit=_concurrency(spec.get("concurrency_limit")),
                description=spec.get("description"),
                tags=spec.get("tags"),
            )
        )
    return served


def _flow(entrypoint: str) -> Any:
    """The flow an entrypoint (``flows/protect.py:protect``) names."""
    path, _, attribute = entrypoint.partition(":")
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    return getattr(module, attribute)


def _located(name: str, value: Any) -> Any:
    """Locations relative to the checkout, as the pull step of ``prefect.yaml`` reads them."""
    if name in _LOCATIONS and isinstance(value, str) and "://" not in value:
        return absolute(str(PROJECT_ROOT / value))
    return value


def _schedule(spec: dict[str, Any], cron: str | None, timezone: str | None) -> Any:
    from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule

    if "cron" in spec:
        return CronSchedule(
            cron=cron or spec["cron"], timezone=timezone or spec.get("timezone", "UTC")
        )
    return IntervalSchedule(interval=spec["interval"])


def _concurrency(spec: dict[str, Any] | int | None) -> Any:
    from prefect.client.schemas.objects import ConcurrencyLimitConfig

    if spec is None or isinstance(spec, int):
        return spec
    return ConcurrencyLimitConfig(**spec)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m deployments.serve", description="Serve every mori-pipeline flow."
    )
    parser.add_argument(
        "--manifest", help="the nightly protect run's manifest (no schedule if unset)"
    )
    parser.add_argument("--audit", default=DEFAULT_AUDIT, help="audit tables and ledger")
    parser.add_argument(
        "--output", help="outputs of every flow (default: each protect run's; finalize follows it)"
    )
    parser.add_argument("--cron", help="protect's schedule (default: prefect.yaml's)")
    parser.add_argument("--report-cron", help="report's schedule (default: prefect.yaml's)")
    parser.add_argument("--timezone", help="of both schedules (default: prefect.yaml's)")
    parser.add_argument("--only", action="append", choices=NAMES, help="serve only these flows")
    parser.add_argument("--limit", type=int, help="most flow runs at once (default 5)")
    parser.add_argument(
        "--receiver",
        type=int,
        metavar="PORT",
        help="also run the webhook receiver on this port (starts finalize once per order)",
    )
    parser.add_argument("--receiver-host", default="127.0.0.1")
    parser.add_argument(
        "--register-url", metavar="URL", help="register the receiver's public URL with MORI first"
    )
    return parser


def start_receiver(
    audit: str, output: str | None, host: str, port: int, register_url: str | None
) -> Any:
    """The webhook receiver on a background thread, recording into ``audit``'s ledger."""
    from deployments.receiver import NoSecretError, finalizing_receiver
    from mori.batch.ledger import ledger_location
    from mori.batch.receiver import PATH
    from mori.serving import ThreadedServer
    from mori.settings import Settings

    settings = Settings()
    params = {"audit": audit, **({"output": output} if output else {})}
    try:
        receiver, _ = finalizing_receiver(
            ledger_location(audit, settings),
            settings,
            register_url=register_url,
            parameters=params,
        )
    except NoSecretError as exc:
        raise SystemExit(f"error: {exc}") from None
    server = ThreadedServer(receiver.app, host=host, port=port).start()
    print(f"receiving MORI webhooks on {server.url}{PATH}")
    return server


def take_over(deployments: Sequence[Any]) -> list[str]:
    """Make deployments of the same names that ``prefect deploy`` created (for a work pool)
    ready to be served; returns their names.

    Serving updates an existing deployment in place but leaves its code location as it was:
    one made by ``prefect deploy`` has none (its pull steps fetch the code), serving removes
    the pull steps, and every run would then fail to load its flow. Each such deployment gets
    the location serving would have given a new one: this process's working directory."""
    from prefect import get_client
    from prefect.client.schemas.actions import DeploymentUpdate
    from prefect.exceptions import ObjectNotFound

    taken = []
    with get_client(sync_client=True) as client:
        for deployment in deployments:
            full_name = f"{deployment.flow_name}/{deployment.name}"
            try:
                current = client.read_deployment_by_name(full_name)
            except ObjectNotFound:
                continue
            if current.path is None and current.pull_steps:
                client.update_deployment(current.id, DeploymentUpdate(path=str(Path.cwd())))
                taken.append(full_name)
    return taken


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from prefect import serve

    audit, output = absolute(args.audit), args.output and absolute(args.output)
    deployments = build(
        manifest=args.manifest and absolute(args.manifest),
        audit=audit,
        output=output,
        cron=args.cron,
        report_cron=args.report_cron,
        timezone=args.timezone,
        only=args.only or NAMES,
    )
    if args.receiver:
        start_receiver(audit, output, args.receiver_host, args.receiver, args.register_url)
    take_over(deployments)
    serve(*deployments, limit=args.limit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
