"""``data/`` in a fresh clone: the example is there and small, the deployments' defaults name
files the clone has, and what runs write is ignored by git."""

from __future__ import annotations

import subprocess
from collections import Counter

import pytest
import yaml

from mori.batch import manifest
from mori.batch.storage import Storage
from tests.support.paths import REPO

EXAMPLES = REPO / "data" / "examples"


def tracked(*paths: str) -> set[str]:
    """Which of ``paths`` (relative to the repository) git tracks: what a fresh clone has."""
    done = subprocess.run(
        ["git", "ls-files", "--", *paths], cwd=REPO, capture_output=True, text=True, check=True
    )
    return set(done.stdout.split())


def test_the_example_is_small_offline_and_shows_one_bad_row() -> None:
    items = manifest.load(str(EXAMPLES / "manifest.csv"), Storage())
    assert Counter(it.error_code for it in items) == {None: 5, "FILE_NOT_FOUND": 1}
    assert {it.format for it in items if it.ok} == {"JPEG", "PNG", "WEBP", "TIFF", "BMP"}
    assert all(it.kind == "file" for it in items)  # no URL rows: it runs offline
    files = [f"data/examples/{it.source}" for it in items if it.ok]
    assert tracked("data/examples/manifest.csv", *files) == {"data/examples/manifest.csv", *files}
    assert sum((REPO / f).stat().st_size for f in files) < 8 * 1024


def test_the_deployments_defaults_name_files_a_fresh_clone_has() -> None:
    document = yaml.safe_load((REPO / "prefect.yaml").read_text(encoding="utf-8"))
    inputs = [
        value
        for spec in document["deployments"]
        for name, value in (spec.get("parameters") or {}).items()
        if name in ("manifest", "source")
    ]
    assert inputs == ["data/examples/manifest.csv"]
    assert tracked(*inputs) == set(inputs)


@pytest.mark.parametrize(
    "written",
    [
        "data/examples/output/cat-1.jpg",
        "data/examples/audit/ledger.sqlite",
        "data/nightly/audit/images/x.parquet",
        "data/nightly/output/cat-1.jpg",
        "data/demo/manifest.csv",
        "data/work/mine.csv",
    ],
)
def test_what_runs_write_is_ignored(written: str) -> None:
    done = subprocess.run(["git", "check-ignore", "-q", written], cwd=REPO, check=False)
    assert done.returncode == 0, f"{written} is not ignored by git"
