"""The README's walk-through of ``data/examples`` (plan it, run it against the emulator started
with ``mori-pipeline emulator``, look at the audit), run exactly as written there: its commands
are read from the README and executed by bash, in a copy of the checkout's ``data/examples``."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mori.serving import free_port
from tests.support.paths import REPO

SECTION = "### Try it on the example first"
README_PORT = "8900"
EXAMPLE_IMAGES = ("cat.jpg", "dog.png", "fox.webp", "owl.tiff", "bee.bmp")


def walkthrough() -> tuple[str, str]:
    """The section's two bash blocks: the emulator's command, and the second terminal's."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split(SECTION, 1)[1].split("\n### ", 1)[0]
    emulator, session = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    return emulator.strip(), session


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A folder that looks like the repository root to the walk-through: ``.venv`` and
    ``data/examples`` (a copy: the run writes beside the manifest)."""
    root = tmp_path / "checkout"
    shutil.copytree(REPO / "data" / "examples", root / "data" / "examples")
    (root / ".venv").symlink_to(REPO / ".venv", target_is_directory=True)
    return root


@pytest.fixture
def emulator(checkout: Path) -> Iterator[str]:
    """The README's emulator command on a free port; its URL, once it answers."""
    command, _ = walkthrough()
    port = str(free_port())
    assert f"--port {README_PORT}" in command
    args = shlex.split(command.replace(README_PORT, port))
    log = (checkout / "emulator.log").open("wb")
    proc = subprocess.Popen(
        args, cwd=checkout, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (checkout / "emulator.log").read_text()
            try:
                httpx.get(f"{url}/_emulator/stats", timeout=2).raise_for_status()
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "the emulator did not start"
                time.sleep(0.3)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
        log.close()


@pytest.mark.slow
def test_the_readme_walkthrough(prefect: str, checkout: Path, emulator: str) -> None:
    _, session = walkthrough()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MORI_", "AWS_"))}
    env.update(PREFECT_API_URL=prefect, PREFECT_SERVER_ANALYTICS_ENABLED="false")
    done = subprocess.run(
        ["bash", "-c", session.replace(README_PORT, emulator.rsplit(":", 1)[1])],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = done.stdout
    assert done.returncode == 0, done.stdout + done.stderr
    plan = dict(
        re.findall(r"^(new images|bad rows|orders to create|API calls)\s+(\S+)$", out, re.M)
    )
    assert plan == {"new images": "5", "bad rows": "1", "orders to create": "1", "API calls": "4"}
    assert "processed 5, skipped 0, failed 1, pending 0" in out
    assert "failed FILE_NOT_FOUND: 1" in out
    audit = {line.split()[1]: line.split()[2:] for line in out.splitlines() if " images/" in line}
    assert audit["images/missing.jpg"][:2] == ["failed", "FILE_NOT_FOUND"]
    processed = {source for source, cells in audit.items() if cells[0] == "processed"}
    assert processed == {f"images/{name}" for name in EXAMPLE_IMAGES}
    stats = httpx.get(f"{emulator}/_emulator/stats").json()
    assert (stats["orders_created"], stats["files_processed"]) == (1, 5)
    outputs = sorted(p.suffix for p in (checkout / "data" / "examples" / "output").iterdir())
    assert outputs == [".bmp", ".jpg", ".png", ".tiff", ".webp"]
