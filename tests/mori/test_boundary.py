"""The SDK stands alone: importing it pulls in no pipeline, emulator or heavy dependency, and
no SDK module but ``mori.settings`` reads the environment."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import mori
from tests.support.paths import REPO

SDK_MODULES = [
    "mori",
    "mori.client",
    "mori.errors",
    "mori.models",
    "mori.retry",
    "mori.ratelimit",
    "mori.keys",
    "mori.webhooks",
    "mori.settings",
]
FORBIDDEN = [
    "prefect",
    "pandas",
    "pyarrow",
    "boto3",
    "fastapi",
    "mori.batch",
    "mori.emulator",
    "tasks",
    "flows",
    "deployments",
]

PROBE = """
import importlib, json, sys
for name in {modules!r}:
    importlib.import_module(name)
print(json.dumps(sorted(sys.modules)))
"""


def test_importing_the_sdk_pulls_in_nothing_forbidden() -> None:
    code = PROBE.format(modules=SDK_MODULES)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    loaded = json.loads(result.stdout)
    leaked = [m for m in loaded if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)]
    assert leaked == []
    assert set(SDK_MODULES) <= set(loaded)


def test_importing_installs_no_log_filter() -> None:
    code = (
        "import logging, mori, mori.client\n"
        "print(len(logging.getLogger('httpx').filters))\n"
        "mori.MoriClient('http://x.test').close()\n"
        "mori.MoriClient('http://x.test').close()\n"
        "print(len(logging.getLogger('httpx').filters))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.split() == ["0", "1"]


def test_only_settings_reads_the_environment() -> None:
    package = Path(mori.__file__).parent
    sdk = [p for p in package.glob("*.py") if p.name != "settings.py"]
    assert sdk
    readers = [p.name for p in sdk if re.search(r"os\.environ|os\.getenv|getenv\(", p.read_text())]
    assert readers == []


def test_no_module_imports_a_librarys_private_module() -> None:
    """Private modules of pandas, pyarrow, Prefect and the rest change without notice."""
    own = ("mori", "tasks", "flows", "deployments")
    private = re.compile(r"^\s*(?:from|import) ([\w.]*\._\w+)", re.M)
    found = [
        f"{path.relative_to(REPO)}: {name}"
        for package in own
        for path in sorted((REPO / package).rglob("*.py"))
        for name in private.findall(path.read_text())
        if name.split(".")[0] not in own
    ]
    assert found == []
