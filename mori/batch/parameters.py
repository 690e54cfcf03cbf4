"""The parameters of a ``protect`` run: one model for the flow, the CLI and the run's config.

Each parameter's type, limits and help text is an ``Annotated`` alias below, and its default
lives once, in :data:`DEFAULTS`. The ``protect`` flow's signature is written with the
same aliases and defaults (Prefect builds the UI form from it; a test checks that the two
agree), ``mori-pipeline run`` generates its options from the model
(:func:`mori.batch.parameters.cli_options`), and :class:`~mori.batch.runtime.RunConfig` is built
from a validated model. No parameter holds a secret: the UI shows parameters.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal, Self, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "DEFAULTS",
    "MAX_CONCURRENT_ORDERS",
    "MIN_AUTO_ORDERS",
    "RPM_PER_ORDER",
    "CliOption",
    "Completion",
    "ProtectParameters",
    "cli_options",
    "orders_at_once",
]

#: Most orders one ``protect`` run drives at once (its thread pool's size).
MAX_CONCURRENT_ORDERS = 32
#: Fewest orders at once the automatic choice makes (a run under MORI's smallest plan).
MIN_AUTO_ORDERS = 4
#: A run that polls under a rate limit drives, by the automatic choice, one order at once per
#: this many requests per minute of the plan: 4 at 60/min, 10 at 300/min, 32 at 1,000/min.
RPM_PER_ORDER = 30

Completion = Literal["auto", "webhook", "poll"]

Manifest = Annotated[
    str | None,
    Field(
        min_length=1,
        description="Manifest (CSV, Parquet or JSONL): local path or s3:// (or set source)",
    ),
]
Output = Annotated[str | None, Field(description="Outputs (default <manifest folder>/output)")]
Audit = Annotated[
    str | None, Field(description="Audit tables and ledger (default <manifest folder>/audit)")
]
OrderSize = Annotated[int, Field(ge=1, le=100, description="Images per order (1..100)")]
MaxConcurrentOrders = Annotated[
    int,
    Field(
        ge=0,
        le=MAX_CONCURRENT_ORDERS,
        description=f"Orders driven at once by this run; 0 = automatic: {MAX_CONCURRENT_ORDERS} "
        f"with webhooks or no rate limit; when polling under one, one per {RPM_PER_ORDER} "
        f"requests per minute of the plan (MORI_RATE_LIMIT_RPM), at least {MIN_AUTO_ORDERS}",
    ),
]
WaitTimeout = Annotated[
    float,
    Field(
        ge=0,
        le=7 * 86400,
        description="Seconds to wait per order for MORI; 0 = only submit "
        "(finalize/reconcile complete the orders)",
    ),
]
PollInterval = Annotated[
    float, Field(gt=0, le=3600, description="Seconds between polls of an order's status")
]
WebhookGrace = Annotated[
    float, Field(ge=0, le=86400, description="Seconds to wait for a webhook before polling")
]
CompletionMode = Annotated[
    Completion,
    Field(
        description="How a run learns an order finished: "
        "auto (webhook if a secret is configured), webhook or poll"
    ),
]
AllowedPrivateHosts = Annotated[
    list[str],
    Field(
        max_length=64,
        description="host[:port] of internal URL hosts rows may name anyway (e.g. a test server)",
    ),
]
RetryFailed = Annotated[
    bool, Field(description="Send images that failed for good in earlier runs again")
]
Source = Annotated[
    str | None,
    Field(
        min_length=1,
        description="A folder or s3://bucket/prefix/ whose images are the manifest "
        "(instead of manifest)",
    ),
]
Include = Annotated[
    list[str],
    Field(
        max_length=64,
        description="With source: only paths below it matching a glob (* crosses folders; "
        "default: every file with an image extension)",
    ),
]
Exclude = Annotated[
    list[str], Field(max_length=64, description="With source: leave out paths matching a glob")
]
ModifiedSince = Annotated[
    datetime | None,
    Field(description="With source: only objects modified at or after this time (ISO 8601)"),
]
MaxNewImages = Annotated[
    int,
    Field(
        ge=0,
        description="Refuse a run that would send more images to MORI than this; 0 = no limit",
    ),
]
Credentials = Annotated[
    str,
    Field(
        max_length=100,
        pattern=r"^[a-z0-9-]*$",
        description="mori-credentials block holding MORI's key (what the worker's environment "
        "sets wins); empty: the environment only",
    ),
]
FanOut = Annotated[
    int,
    Field(
        ge=0,
        le=64,
        description="Child runs (protect-orders deployment) driving this run's orders at once, "
        "on any worker; 0 = drive every order in this run",
    ),
]


@dataclass(frozen=True)
class Defaults:
    """Every parameter's default, here and only here (the model, the flow's signature and the
    run's config read them)."""

    order_size: int = 100
    max_concurrent_orders: int = 0
    wait_timeout_seconds: float = 1800.0
    poll_interval_seconds: float = 2.0
    webhook_grace_seconds: float = 30.0
    completion: Completion = "auto"
    allowed_private_hosts: list[str] = field(default_factory=list)
    retry_failed: bool = False
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    max_new_images: int = 100_000
    credentials: str = "default"
    fan_out: int = 0


DEFAULTS = Defaults()


class ProtectParameters(BaseModel):
    """A ``protect`` run's parameters, validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    manifest: Manifest = None
    output: Output = None
    audit: Audit = None
    order_size: OrderSize = DEFAULTS.order_size
    max_concurrent_orders: MaxConcurrentOrders = DEFAULTS.max_concurrent_orders
    wait_timeout_seconds: WaitTimeout = DEFAULTS.wait_timeout_seconds
    poll_interval_seconds: PollInterval = DEFAULTS.poll_interval_seconds
    webhook_grace_seconds: WebhookGrace = DEFAULTS.webhook_grace_seconds
    completion: CompletionMode = DEFAULTS.completion
    allowed_private_hosts: AllowedPrivateHosts = Field(default_factory=list)
    retry_failed: RetryFailed = DEFAULTS.retry_failed
    source: Source = None
    include: Include = Field(default_factory=list)
    exclude: Exclude = Field(default_factory=list)
    modified_since: ModifiedSince = None
    max_new_images: MaxNewImages = DEFAULTS.max_new_images
    credentials: Credentials = DEFAULTS.credentials
    fan_out: FanOut = DEFAULTS.fan_out

    @model_validator(mode="after")
    def _one_input(self) -> Self:
        """Exactly one of ``manifest`` and ``source``; the listing filters only with a source."""
        if (self.manifest is None) == (self.source is None):
            raise ValueError("give exactly one of manifest and source")
        if self.source is None and (self.include or self.exclude or self.modified_since):
            raise ValueError("include, exclude and modified_since need a source")
        return self


def orders_at_once(
    requested: int, rpm: int | None, shared_limit: bool = False, polling: bool = False
) -> int:
    """How many orders a run drives at once: ``requested``, or for ``0`` the automatic choice.

    An order waiting for its webhook spends none of the rate limit's budget, so a run that
    waits for webhooks, or has no limit, drives every order it may (:data:`MAX_CONCURRENT_ORDERS`)
    and MORI always has work. A run that ``polls`` under a plan of ``rpm`` requests per minute
    spends the budget on every order in flight: it drives enough orders to keep that budget
    busy and no more, ``rpm / RPM_PER_ORDER`` within [:data:`MIN_AUTO_ORDERS`,
    :data:`MAX_CONCURRENT_ORDERS`]; under a shared limit whose plan is not known here, the
    smallest plan's share.
    """
    if requested:
        return requested
    if polling and rpm:
        return max(MIN_AUTO_ORDERS, min(MAX_CONCURRENT_ORDERS, rpm // RPM_PER_ORDER))
    return MIN_AUTO_ORDERS if polling and shared_limit else MAX_CONCURRENT_ORDERS


# -- the command line ----------------------------------------------------------------------------

#: Option names of the CLI that differ from ``--<parameter-name>`` (kept for existing scripts).
_CLI_NAMES = {
    "wait_timeout_seconds": "--wait-timeout",
    "poll_interval_seconds": "--poll-interval",
    "webhook_grace_seconds": "--webhook-grace",
    "allowed_private_hosts": "--allow-private-url-host",
}
_METAVARS = {
    "allowed_private_hosts": "HOST[:PORT]",
    "include": "GLOB",
    "exclude": "GLOB",
    "modified_since": "TIME",
    "credentials": "BLOCK",
}


@dataclass(frozen=True)
class CliOption:
    """One ``argparse`` option generated from a parameter."""

    name: str  # the model field
    flag: str  # e.g. --order-size
    kwargs: dict[str, Any]


def cli_options(model: type[BaseModel] = ProtectParameters) -> Iterator[CliOption]:
    """The ``argparse`` options of every field of ``model``, in field order.

    Booleans become flags, ``Literal`` types choices, lists repeatable options; a field without
    a default is a required option. The CLI passes ``None`` for options not given, so the
    model's defaults apply (argparse never holds a default of its own).
    """
    for name, info in model.model_fields.items():
        annotation = info.annotation
        flag = _CLI_NAMES.get(name, "--" + name.replace("_", "-"))
        kwargs: dict[str, Any] = {"dest": name, "help": info.description, "default": None}
        default = info.get_default(call_default_factory=True)
        if info.is_required():
            kwargs["required"] = True
        elif default not in (None, [], False):
            kwargs["help"] = f"{info.description} (default: {_shown(default)})"
        base = _without_none(annotation)
        if base is bool:
            kwargs["action"] = "store_true"
        elif get_origin(base) is Literal:
            kwargs["choices"] = list(get_args(base))
        elif get_origin(base) is list:
            kwargs["action"] = "append"
            kwargs["metavar"] = _METAVARS.get(name, "VALUE")
        elif base in (int, float):
            kwargs["type"] = base
            kwargs["metavar"] = "SECONDS" if name.endswith("_seconds") else "N"
        else:
            kwargs["metavar"] = _METAVARS.get(name, "URI")
        yield CliOption(name, flag, kwargs)


def _without_none(annotation: Any) -> Any:
    """``X`` for ``X | None``, else the annotation itself."""
    args = [a for a in get_args(annotation) if a is not type(None)]
    if type(None) in get_args(annotation) and len(args) == 1:
        return args[0]
    return annotation


def _shown(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
