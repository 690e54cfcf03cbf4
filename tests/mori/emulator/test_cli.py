"""The ``mori-pipeline emulator`` command line: every emulator option reaches the config."""

from __future__ import annotations

import pytest

from deployments.cli import _parser, main
from mori.emulator import EmulatorConfig
from mori.emulator.cli import config_from_args, parse_logins


def _config(*argv: str, client_key: str | None = None) -> EmulatorConfig:
    return config_from_args(_parser().parse_args(["emulator", *argv]), client_key)


def test_defaults() -> None:
    config = _config()
    assert config == _config()  # deterministic
    assert config.generation == "g1" and config.processing_mode == "filter"
    assert config.token_ttl == 7200 and config.usage_limit == 100_000
    assert not config.enforce_usage_limit and dict(config.logins) == {}
    assert config.api_keys == frozenset({"test-key"})


def test_every_new_option() -> None:
    config = _config(
        "--login",
        "ana@example.com:pa:ss",
        "--login",
        "bo@example.com:x",
        "--token-ttl",
        "60",
        "--usage-limit",
        "10",
        "--enforce-usage-limit",
        "--generation",
        "g3",
        "--processing-mode",
        "copy",
        client_key="env-key",
    )
    assert dict(config.logins) == {"ana@example.com": "pa:ss", "bo@example.com": "x"}
    assert config.token_ttl == 60 and config.usage_limit == 10
    assert config.enforce_usage_limit
    assert config.generation == "g3" and config.processing_mode == "copy"
    assert config.api_keys == frozenset({"env-key"})
    assert _config("--api-key", "a", "--api-key", "b").api_keys == frozenset({"a", "b"})


@pytest.mark.parametrize("entry", ["no-colon", ":password", "a@example.com:", " :pw"])
def test_bad_login_entries(entry: str) -> None:
    with pytest.raises(ValueError, match="EMAIL:PASSWORD") as caught:
        parse_logins(["ok@example.com:fine", entry])
    assert "#2" in str(caught.value) and "fine" not in str(caught.value)


def test_bad_settings_end_the_command_with_exit_code_1(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["emulator", "--login", "a@example.com:secret-pw", "--token-ttl", "0"]) == 1
    error = capsys.readouterr().err
    assert "token_ttl" in error and "secret-pw" not in error
    assert main(["emulator", "--login", "secret-pw"]) == 1
    assert "secret-pw" not in capsys.readouterr().err


@pytest.mark.parametrize(("flag", "value"), [("--generation", "g2"), ("--processing-mode", "x")])
def test_choices_are_checked_by_the_parser(flag: str, value: str) -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(["emulator", flag, value])
