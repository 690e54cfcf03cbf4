"""Which backend a target names, where a run's ledger lives, and passwords never shown."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest

from mori.batch.ledger import (
    Ledger,
    LedgerOptions,
    RetryPolicy,
    ledger_location,
    open_ledger,
    redact,
)
from mori.batch.ledger.target import parse_target
from mori.settings import Settings

SECRET = "s3cr3t-Pa55"


@pytest.mark.parametrize(
    ("target", "backend", "where"),
    [
        ("/data/audit/ledger.sqlite", "sqlite", Path("/data/audit/ledger.sqlite")),
        ("relative/ledger.sqlite", "sqlite", Path("relative/ledger.sqlite")),
        (Path("/p/l.sqlite"), "sqlite", Path("/p/l.sqlite")),
        ("sqlite:///abs/path/ledger.sqlite", "sqlite", Path("/abs/path/ledger.sqlite")),
        ("sqlite:////abs/l.sqlite", "sqlite", Path("/abs/l.sqlite")),
        ("sqlite://localhost/abs/l.sqlite", "sqlite", Path("/abs/l.sqlite")),
        ("sqlite:///abs/with%20space.sqlite", "sqlite", Path("/abs/with space.sqlite")),
        ("postgresql://u@db:5432/mori", "postgresql", "postgresql://u@db:5432/mori"),
        ("postgres://u@db/mori", "postgresql", "postgres://u@db/mori"),
        ("PostgreSQL://db/mori", "postgresql", "PostgreSQL://db/mori"),
    ],
)
def test_targets_name_their_backend(target: str | Path, backend: str, where: object) -> None:
    spec = parse_target(target)
    assert spec.backend == backend
    assert (spec.path if backend == "sqlite" else spec.url) == where


@pytest.mark.parametrize(
    "target", ["mysql://u:p@h/db", "sqlite://otherhost/x.sqlite", "sqlite:///", "s3://b/ledger"]
)
def test_unsupported_targets_are_refused_without_their_password(target: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_target(target)
    assert ":p@" not in str(raised.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"postgresql://mori:{SECRET}@db:5432/ledger", "postgresql://mori:***@db:5432/ledger"),
        (f"postgres://mori:{SECRET}@h1:5432,h2:5433/l", "postgres://mori:***@h1:5432,h2:5433/l"),
        ("postgresql://mori@db/ledger", "postgresql://mori@db/ledger"),
        (
            f"postgresql://db/ledger?sslmode=require&password={SECRET}",
            "postgresql://db/ledger?sslmode=require&password=***",
        ),
        (
            f"postgresql://mori:{SECRET}@/ledger?host=/run/pg",
            "postgresql://mori:***@/ledger?host=/run/pg",
        ),
        (f"postgresql://:{SECRET}@db/ledger", "postgresql://:***@db/ledger"),
        ("/plain/path.sqlite", "/plain/path.sqlite"),
    ],
)
def test_redact_masks_every_password(url: str, shown: str) -> None:
    assert redact(url) == shown
    assert SECRET not in redact(url)


AUDIT_S3 = "s3://bucket/audit"
S3_FILE = f"ledger-{hashlib.sha256(AUDIT_S3.encode()).hexdigest()[:16]}.sqlite"


@pytest.mark.parametrize(
    ("audit", "env", "explicit", "expected"),
    [
        ("/data/audit", {}, None, "/data/audit/ledger.sqlite"),
        (AUDIT_S3, {}, None, f"/state/mori-pipeline/{S3_FILE}"),
        ("/data/audit", {"ledger_path": "/l/p.sqlite"}, None, "/l/p.sqlite"),
        (AUDIT_S3, {"ledger_path": "/l/p.sqlite"}, None, "/l/p.sqlite"),
        (
            "/a",
            {"ledger_url": "postgresql://db/l", "ledger_path": "/l/p"},
            None,
            "postgresql://db/l",
        ),
        ("/a", {"ledger_url": "postgresql://db/l"}, "/x.sqlite", "/x.sqlite"),
    ],
)
def test_ledger_location_order_of_precedence(
    audit: str, env: dict[str, str], explicit: str | None, expected: str
) -> None:
    settings = Settings(state_home=Path("/state"), **env)  # type: ignore[arg-type]
    assert ledger_location(audit, settings, explicit) == expected


def test_ledger_location_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MORI_LEDGER_URL", "postgresql://db/from-env")
    assert ledger_location("/data/audit", Settings()) == "postgresql://db/from-env"
    monkeypatch.setenv("MORI_LEDGER_URL", "")
    monkeypatch.setenv("XDG_STATE_HOME", "/xdg")
    assert ledger_location(AUDIT_S3, Settings()) == f"/xdg/mori-pipeline/{S3_FILE}"


def test_open_ledger_opens_either_backend(ledger_url: str) -> None:
    with open_ledger(ledger_url) as ledger:
        assert ledger.backend == ("postgresql" if "://" in ledger_url else "sqlite")
        assert ledger.order_count() == 0


def test_a_sqlite_ledger_describes_its_file(tmp_path: Path) -> None:
    with open_ledger(f"sqlite://{tmp_path}/l.sqlite") as ledger:
        assert ledger.path == tmp_path / "l.sqlite"
        assert repr(ledger) == f"Ledger({str(tmp_path / 'l.sqlite')!r})"


def test_the_password_of_a_postgres_url_is_never_shown(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Trust authentication ignores the password, so the ledger works; nothing shows it."""
    url = postgres_url.replace("postgres@", f"postgres:{SECRET}@")
    caplog.set_level(logging.DEBUG)
    with Ledger(url) as ledger:
        ledger.record_event("e1", "ORDER.PROCESSED", "o1", "complete", {})
        shown = [repr(ledger), str(ledger.path), ledger.location]
    assert all(SECRET not in text for text in shown)
    assert "***" in ledger.location
    assert SECRET not in caplog.text


def test_a_failed_connection_never_shows_the_password(caplog: pytest.LogCaptureFixture) -> None:
    """Nothing listens on port 1: the retries give up; their logs and error hide the password."""
    caplog.set_level(logging.DEBUG)
    naps: list[float] = []
    fast = RetryPolicy(attempts=3, first_delay=0.01, connect_timeout=0.5, sleep=naps.append)
    url = f"postgresql://mori:{SECRET}@127.0.0.1:1/ledger?connect_timeout=1"
    with pytest.raises(Exception) as raised:
        Ledger(url, options=LedgerOptions(retry=fast))
    assert len(naps) == 2  # three tries, two waits between them
    assert SECRET not in str(raised.value) and SECRET not in repr(raised.value)
    assert SECRET not in caplog.text
    assert "connection lost" in caplog.text and "mori:***@127.0.0.1:1" in caplog.text
