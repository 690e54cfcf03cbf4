"""The ``mori-credentials`` block: merged under the environment, saved by bootstrap, used by a
real ``protect`` run whose worker has no MORI variables at all, never showing its secrets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from deployments.bootstrap import bootstrap
from mori.emulator import EmulatorConfig, EmulatorServer
from mori.settings import Settings
from tasks.blocks import MoriCredentials
from tasks.credentials import CredentialsError, load_settings

KEY = "sk-block-SECRET-7f3a"
WEBHOOK = "whsec-block-SECRET-91c"
MORI_VARS = (
    "MORI_API_URL",
    "MORI_API_KEY",
    "MORI_EMAIL",
    "MORI_PASSWORD",
    "MORI_API_GENERATION",
    "MORI_WEBHOOK_SECRET",
    "MORI_CREDENTIALS_BLOCK",
)


@pytest.fixture
def bare_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No MORI variable in the environment."""
    for name in MORI_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _plain(settings: Settings) -> dict[str, Any]:
    return {
        "api_key": Settings.secret(settings.api_key),
        "email": settings.email,
        "password": Settings.secret(settings.password),
        "webhook_secret": Settings.secret(settings.webhook_secret),
        "api_url": settings.api_url,
        "api_generation": settings.api_generation,
    }


BLOCK = MoriCredentials(
    api_key=SecretStr("block-key"),
    webhook_secret=SecretStr("block-hook"),
    api_url="https://mori.example/",
    api_generation="g3",
)


@pytest.mark.parametrize(
    ("env", "block", "expected"),
    [
        (  # the block fills everything the environment lacks
            {},
            BLOCK,
            {"api_key": "block-key", "webhook_secret": "block-hook"}
            | {"api_url": "https://mori.example", "api_generation": "g3"},
        ),
        (  # what the environment sets wins, field by field
            {"MORI_API_KEY": "env-key", "MORI_API_URL": "http://env:1"},
            BLOCK,
            {"api_key": "env-key", "webhook_secret": "block-hook"}
            | {"api_url": "http://env:1", "api_generation": "g3"},
        ),
        (  # the environment's email and password are never joined by the block's key
            {"MORI_EMAIL": "a@b.c", "MORI_PASSWORD": "env-pw"},
            BLOCK,
            {"email": "a@b.c", "password": "env-pw", "webhook_secret": "block-hook"}
            | {"api_url": "https://mori.example", "api_generation": "g3"},
        ),
        (  # an empty variable is unset: the block fills it
            {"MORI_API_KEY": "", "MORI_WEBHOOK_SECRET": " "},
            MoriCredentials(email="x@y.z", password=SecretStr("block-pw")),
            {"email": "x@y.z", "password": "block-pw"},
        ),
    ],
    ids=["block-fills", "env-wins", "credentials-as-one", "empty-is-unset"],
)
def test_the_environment_wins_and_the_block_fills_the_rest(
    bare_env: pytest.MonkeyPatch,
    env: dict[str, str],
    block: MoriCredentials,
    expected: dict[str, Any],
) -> None:
    for name, value in env.items():
        bare_env.setenv(name, value)
    merged = block.settings(Settings())
    nothing = {"api_key": None, "email": None, "password": None, "webhook_secret": None}
    defaults = {"api_url": "https://morimori.app", "api_generation": "g1"}
    assert _plain(merged) == nothing | defaults | expected


def test_secrets_never_show(bare_env: pytest.MonkeyPatch) -> None:
    block = MoriCredentials(api_key=SecretStr(KEY), password=SecretStr(KEY), email="a@b.c")
    merged = block.settings(Settings())
    shown = [repr(block), str(block), block.model_dump_json(), repr(merged), str(merged)]
    shown.append(json.dumps(block.model_dump(mode="json")))
    assert not [text for text in shown if KEY in text]


def test_environment_only_needs_no_block(bare_env: pytest.MonkeyPatch) -> None:
    bare_env.setenv("MORI_API_KEY", "env-key")
    assert load_settings("").api_key == SecretStr("env-key")  # no Prefect API involved
    bare_env.delenv("MORI_API_KEY")
    with pytest.raises(CredentialsError, match=r"^no MORI credentials: set MORI_API_KEY"):
        load_settings("")


def test_a_missing_block_is_fine_only_with_credentials_in_the_environment(
    prefect_api: Any, bare_env: pytest.MonkeyPatch
) -> None:
    bare_env.setenv("MORI_API_KEY", "env-key")
    assert _plain(load_settings("nowhere"))["api_key"] == "env-key"
    bare_env.delenv("MORI_API_KEY")
    with pytest.raises(CredentialsError) as info:
        load_settings("nowhere")
    assert "mori-credentials block named 'nowhere'" in str(info.value)
    assert "\n" not in str(info.value)
    MoriCredentials(api_url="http://no-key").save("keyless", overwrite=True)
    with pytest.raises(CredentialsError, match="'keyless' holds no API key"):
        load_settings("keyless")


def test_bootstrap_saves_the_environment_as_the_default_block(
    prefect_api: Any, tmp_path: Path
) -> None:
    env = Settings(api_key=KEY, webhook_secret=WEBHOOK, credentials_block="boot-test")
    first = bootstrap(60, home=tmp_path, credentials=env)
    assert first.actions["block type mori-credentials"] in ("created", "unchanged")
    assert first.actions["block mori-credentials/boot-test"] == "created"
    again = bootstrap(60, home=tmp_path, credentials=env)
    assert again.actions["block type mori-credentials"] == "unchanged"
    assert again.actions["block mori-credentials/boot-test"] == "unchanged"
    rotated = env.model_copy(update={"api_key": SecretStr("sk-rotated")})
    assert bootstrap(60, home=tmp_path, credentials=rotated).actions[
        "block mori-credentials/boot-test"
    ] == ("updated")
    saved = MoriCredentials.load("boot-test")
    assert Settings.secret(saved.api_key) == "sk-rotated"
    assert Settings.secret(saved.webhook_secret) == WEBHOOK
    assert saved.api_url is None and saved.api_generation is None  # defaults stay unset
    keyless = Settings(credentials_block="boot-test")
    report = bootstrap(60, home=tmp_path, credentials=keyless)
    assert report.actions["block mori-credentials/boot-test"].startswith("skipped")


def test_a_flow_run_takes_everything_from_the_block(
    prefect_api: Any,
    support: Any,
    bare_env: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The worker's environment has no MORI variable: URL and key come from the block."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from flows.protect import protect

    manifest = support.make_manifest(tmp_path / "batch", 3, seed=31)
    config = EmulatorConfig(api_keys=frozenset({KEY}), processing_seconds=0.1)
    with EmulatorServer(config) as server:
        MoriCredentials(api_key=SecretStr(KEY), api_url=server.url).save(
            "flow-test", overwrite=True
        )
        state = protect(
            manifest=str(manifest), credentials="flow-test", completion="poll", return_state=True
        )
        assert state.is_completed(), state.message
        summary = state.result()
        assert summary.counts == {"processed": 3}
        missing = protect(manifest=str(manifest), credentials="nowhere", return_state=True)
    assert missing.is_failed()
    assert missing.message.startswith("no MORI credentials: set MORI_API_KEY")

    with get_client(sync_client=True) as client:
        (run,) = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[summary.run_id]))
        )
        artifacts = client.read_artifacts()
        logs = client.read_logs()
    assert run.parameters["credentials"] == "flow-test"
    shown = [json.dumps(run.parameters), caplog.text]
    shown += [json.dumps(a.model_dump(mode="json")) for a in artifacts]
    shown += [log.message for log in logs]
    assert not [text for text in shown if KEY in text]
