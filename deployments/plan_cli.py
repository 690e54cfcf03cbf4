"""``mori-pipeline plan``: a dry run -- what a run would do and spend, with nothing done.

It reads, validates and fingerprints the manifest (or lists the source) and looks every image
up in the ledger exactly as ``run`` would, a window of image keys at a time (so a manifest of
any size plans in bounded memory: :mod:`mori.batch.stream`), counts the orders, and prints
the numbers of :class:`mori.batch.estimate.PlanEstimate`. It creates nothing at MORI and
spends nothing (the only request it may send is the sign-in that reports the account's usage,
with ``MORI_EMAIL`` and ``MORI_PASSWORD``), records nothing in the ledger, and does not create
a ledger that does not exist yet. No Prefect server is needed: no flow runs.

Exit codes: 0 the plan was made (``refusal`` says when a run would refuse it); 1 it could not be
(a bad manifest or source, bad options, a ledger that cannot be opened): one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from mori.batch.parameters import ProtectParameters, cli_options

if TYPE_CHECKING:  # imported when used: the parser is built for every command
    from mori.batch.estimate import PlanEstimate
    from mori.batch.ledger import Ledger
    from mori.batch.runtime import RunConfig
    from mori.batch.storage import Storage
    from mori.batch.stream import Survey
    from mori.models import AccountUsage
    from mori.settings import Settings

__all__ = ["PLAN_PARAMETERS", "add_arguments", "run"]

#: The ``protect`` parameters that change a plan (the others only change how it is carried out).
PLAN_PARAMETERS = (
    "manifest",
    "source",
    "include",
    "exclude",
    "modified_since",
    "audit",
    "order_size",
    "allowed_private_hosts",
    "retry_failed",
    "max_new_images",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``plan`` options: those of ``run`` that change the plan, ``--ledger``, ``--json``."""
    for option in cli_options(ProtectParameters):
        if option.name in PLAN_PARAMETERS:
            parser.add_argument(option.flag, **option.kwargs)
    parser.add_argument(
        "--ledger",
        metavar="URL",
        help="the ledger: a path, sqlite:///path or postgresql://... "
        "(default: MORI_LEDGER_URL, else <audit>/ledger.sqlite)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object (and nothing else on stdout)"
    )


def run(args: argparse.Namespace) -> int:
    """Make the plan and print it; the process exit code."""
    from mori.batch.estimate import table

    try:
        plan = _plan(args)
    except _Failure as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(plan.as_dict()))
        return 0
    width = max(len(what) for what, _ in table(plan))
    for what, value in table(plan):
        print(f"{what:<{width}}  {value}")
    print(f"(rate: {plan.rate_per_minute}/min, {plan.rate_source})")
    if plan.refusal:
        print(f"a run would refuse this plan: {plan.refusal}")
    return 0


class _Failure(Exception):
    """The plan could not be made (its message is the one line shown)."""


def _plan(args: argparse.Namespace) -> PlanEstimate:
    """The :class:`~mori.batch.estimate.PlanEstimate` the options ask for."""
    from pydantic import ValidationError

    from deployments.console import first_problem
    from mori.batch.estimate import plan_rate
    from mori.batch.ledger import redact
    from mori.batch.manifest import ManifestError
    from mori.batch.runtime import RunConfig
    from mori.batch.storage import Storage
    from mori.batch.stream import StreamRun
    from mori.settings import Settings

    given = {name: getattr(args, name) for name in PLAN_PARAMETERS}
    try:
        params = ProtectParameters(**{k: v for k, v in given.items() if v is not None})
        settings = Settings()
    except ValidationError as exc:
        raise _Failure(first_problem(exc)) from None
    config = RunConfig.for_protect(params, settings)
    location = args.ledger or config.ledger
    try:
        ledger = _existing_ledger(location)
    except Exception as exc:  # a bad URL, a database out of reach or newer than this code
        shown = f"{type(exc).__name__}: {redact(str(exc))}"
        raise _Failure(f"ledger {redact(location)}: {shown}") from None
    storage = Storage()
    try:
        with tempfile.TemporaryDirectory(prefix="mori-plan-") as scratch:
            survey = _survey(config, storage, ledger, Path(scratch))
            plan = StreamRun(
                survey,
                ledger,
                Path(scratch),
                order_size=config.order_size,
                retry_failed=params.retry_failed,
            )
            plan.triage()
            return plan.estimate(
                rate=plan_rate(settings),
                usage=_usage(settings),
                max_new_images=config.max_new_images,
            )
    except ManifestError as exc:
        raise _Failure(str(exc)) from None
    finally:
        if ledger is not None:
            ledger.close()


def _existing_ledger(location: str) -> Ledger | None:
    """The ledger at ``location`` when it exists (``None`` for a SQLite file no run made yet:
    it is not created). Opening one brings its schema up to date, as every command does."""
    from mori.batch.ledger import open_ledger
    from mori.batch.ledger.target import parse_target

    target = parse_target(location)
    if target.path is not None and not target.path.exists():
        return None
    return open_ledger(location)


def _survey(config: RunConfig, storage: Storage, ledger: Ledger | None, folder: Path) -> Survey:
    """The run's rows, filed by key in ``folder``: the manifest's, or the source's objects
    (nothing recorded)."""
    from mori.batch.listing import pages
    from mori.batch.sources import source_pages
    from mori.batch.stream import survey_items, survey_manifest

    options = config.validation()
    if config.source is None:
        return survey_manifest(config.manifest_uri, storage, options, folder / "rows")
    listed = pages(config.source, storage)
    found = source_pages(listed, storage, options, ledger, remember=False)
    return survey_items(found, options, folder / "rows")


def _usage(settings: Settings) -> AccountUsage | None:
    """The account's usage when MORI reports it (email and password sign-in), else ``None``.

    A sign-in that fails leaves the usage unknown, with a warning on stderr: the plan itself
    needs no MORI.
    """
    if settings.api_key is not None or settings.email is None or settings.password is None:
        return None
    from mori.client import MoriClient
    from mori.errors import MoriError

    try:
        with MoriClient.from_settings(settings) as client:
            return client.account_usage()
    except MoriError as exc:
        print(f"warning: the account's usage is unknown: {exc}", file=sys.stderr)
        return None
