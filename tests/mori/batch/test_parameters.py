"""One parameter model for ``protect``: the flow's signature, the CLI and the defaults agree."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_type_hints

import pytest
from pydantic import ValidationError

from deployments.cli import main
from mori.batch.parameters import (
    DEFAULTS,
    MAX_CONCURRENT_ORDERS,
    MIN_AUTO_ORDERS,
    ProtectParameters,
    cli_options,
    orders_at_once,
)
from mori.batch.runtime import RunConfig, Runtime
from mori.batch.storage import Storage
from mori.client import MoriClient
from mori.settings import Settings


def test_every_default_comes_from_defaults() -> None:
    for field in dataclasses.fields(DEFAULTS):
        assert ProtectParameters.model_fields[field.name].get_default(
            call_default_factory=True
        ) == getattr(DEFAULTS, field.name), field.name
    required = {n for n, f in ProtectParameters.model_fields.items() if f.is_required()}
    optional_without_default = {"manifest", "source", "output", "audit", "modified_since"}
    assert set(ProtectParameters.model_fields) == (
        {f.name for f in dataclasses.fields(DEFAULTS)} | required | optional_without_default
    )


def test_the_flow_signature_is_the_model() -> None:
    from flows.protect import protect

    signature = inspect.signature(protect.fn)
    hints = get_type_hints(protect.fn, include_extras=True)
    model_hints = get_type_hints(ProtectParameters, include_extras=True)
    assert list(signature.parameters) == list(ProtectParameters.model_fields)
    for name, parameter in signature.parameters.items():
        field = ProtectParameters.model_fields[name]
        assert hints[name] == model_hints[name], name
        if field.is_required():
            assert parameter.default is inspect.Parameter.empty, name
        else:
            assert parameter.default == field.get_default(call_default_factory=True), name


def test_the_ui_schema_enforces_the_limits() -> None:
    from prefect.utilities.callables import parameter_schema

    from flows.protect import protect

    properties = parameter_schema(protect.fn).properties
    assert properties["order_size"]["minimum"] == 1
    assert properties["order_size"]["maximum"] == 100
    assert properties["order_size"]["default"] == DEFAULTS.order_size
    assert properties["completion"]["enum"] == ["auto", "webhook", "poll"]
    concurrency = properties["max_concurrent_orders"]
    assert (concurrency["minimum"], concurrency["maximum"]) == (0, MAX_CONCURRENT_ORDERS)
    assert concurrency["default"] == DEFAULTS.max_concurrent_orders == 0  # automatic


def _parse(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser()
    for option in cli_options(ProtectParameters):
        parser.add_argument(option.flag, **option.kwargs)
    args = vars(parser.parse_args(argv))
    return {name: value for name, value in args.items() if value is not None}


def test_the_cli_has_an_option_for_every_parameter() -> None:
    assert [o.name for o in cli_options(ProtectParameters)] == list(ProtectParameters.model_fields)
    flags = {o.flag for o in cli_options(ProtectParameters)}
    # the options scripts already use keep their names
    assert {"--manifest", "--order-size", "--wait-timeout", "--webhook-grace"} <= flags
    assert {"--allow-private-url-host", "--retry-failed", "--completion"} <= flags


def test_cli_options_left_out_take_the_model_defaults() -> None:
    params = ProtectParameters(**_parse(["--manifest", "m.csv"]))
    assert params == ProtectParameters(manifest="m.csv")
    given = _parse(
        [
            "--manifest=m.csv",
            "--order-size=7",
            "--wait-timeout=0",
            "--completion=poll",
            "--allow-private-url-host=127.0.0.1:80",
            "--allow-private-url-host=10.0.0.1",
            "--retry-failed",
        ]
    )
    params = ProtectParameters(**given)
    assert params.order_size == 7 and params.wait_timeout_seconds == 0
    assert params.completion == "poll" and params.retry_failed
    assert params.allowed_private_hosts == ["127.0.0.1:80", "10.0.0.1"]


def test_the_model_refuses_what_the_ui_refuses() -> None:
    with pytest.raises(ValidationError):
        ProtectParameters(manifest="m.csv", order_size=101)
    with pytest.raises(ValidationError):
        ProtectParameters(manifest="")
    with pytest.raises(ValidationError):
        ProtectParameters(manifest="m.csv", surprise=1)  # type: ignore[call-arg]


def test_cli_rejects_a_bad_value_in_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MORI_API_KEY", "k")
    assert main(["run", "--manifest", "m.csv", "--order-size", "0"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: order-size:") and "\n" not in err


def test_a_manifest_or_a_source_with_its_filters() -> None:
    assert ProtectParameters(source="s3://bucket/uploads/").manifest is None
    for given in ({}, {"manifest": "m.csv", "source": "photos"}):
        with pytest.raises(ValidationError, match="exactly one of manifest and source"):
            ProtectParameters(**given)
    with pytest.raises(ValidationError, match="need a source"):
        ProtectParameters(manifest="m.csv", exclude=["tmp/*"])
    with pytest.raises(ValidationError):
        ProtectParameters(manifest="m.csv", max_new_images=-1)
    params = ProtectParameters(
        **_parse(
            [
                "--source=photos",
                "--include=2026/*",
                "--include=*.png",
                "--exclude=tmp/*",
                "--modified-since=2026-01-02T03:04:05Z",
                "--max-new-images=0",
            ]
        )
    )
    assert params.include == ["2026/*", "*.png"] and params.exclude == ["tmp/*"]
    assert params.modified_since == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert params.max_new_images == 0


@pytest.mark.parametrize(
    ("requested", "rpm", "shared", "polling", "expected"),
    [
        (7, None, False, False, 7),  # a number asked for is taken as given
        (7, 1000, True, True, 7),
        (0, None, False, False, MAX_CONCURRENT_ORDERS),  # no limit binds: as many as a run may
        (0, None, False, True, MAX_CONCURRENT_ORDERS),
        (0, 60, False, False, MAX_CONCURRENT_ORDERS),  # waiting for webhooks spends no budget
        (0, 300, True, False, MAX_CONCURRENT_ORDERS),
        (0, 60, False, True, MIN_AUTO_ORDERS),  # polling: sized to the plan
        (0, 300, False, True, 10),
        (0, 1000, False, True, MAX_CONCURRENT_ORDERS),
        (0, 100_000, False, True, MAX_CONCURRENT_ORDERS),
        (0, None, True, True, MIN_AUTO_ORDERS),  # a shared limit whose plan is not known here
        (0, 300, True, True, 10),
    ],
)
def test_orders_at_once(
    requested: int, rpm: int | None, shared: bool, polling: bool, expected: int
) -> None:
    assert orders_at_once(requested, rpm, shared, polling) == expected


def test_a_run_sizes_its_orders_at_once_from_its_rate_limit() -> None:
    params = ProtectParameters(manifest="m.csv", max_concurrent_orders=0)
    for env, expected in [
        ({}, MAX_CONCURRENT_ORDERS),
        ({"rate_limit_rpm": 300}, 10),  # no webhook secret: the run polls
        ({"rate_limit_rpm": 300, "webhook_secret": "s"}, MAX_CONCURRENT_ORDERS),
        ({"global_rate_limit": "mori-api"}, MIN_AUTO_ORDERS),
    ]:
        config = RunConfig.for_protect(params, Settings(**env))
        assert config.orders_at_once == expected, env
    fixed = ProtectParameters(manifest="m.csv", max_concurrent_orders=3)
    assert RunConfig.for_protect(fixed, Settings(rate_limit_rpm=1000)).orders_at_once == 3


@pytest.mark.parametrize("verify", ["header", "decode"])
def test_a_runtime_checks_outputs_as_its_settings_say(tmp_path: Path, verify: str) -> None:
    settings = Settings(api_key="k", api_url="http://127.0.0.1:9", verify_outputs=verify)
    params = ProtectParameters(manifest=str(tmp_path / "m.csv"))
    runtime = Runtime(
        RunConfig.for_protect(params, settings), Storage(), MoriClient.from_settings(settings)
    )
    try:
        assert runtime.processor.settings.verification == verify
    finally:
        runtime.close()
