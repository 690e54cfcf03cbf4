"""What ``protect`` does before its first order, in Prefect's test harness against the emulator:
the plan artifact, the ``max_new_images`` guard, the one line of a run whose manifest is missing,
and a folder or S3 prefix as the source (a second run downloads nothing it holds)."""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from uuid import UUID

import boto3
import pyarrow.dataset as ds
import pytest

from deployments.stack import LocalStack
from mori.batch.ledger import Ledger, ledger_location
from mori.batch.storage import Storage
from mori.emulator.s3server import s3_client
from mori.settings import Settings
from tests.support.images import image_bytes, write_image
from tests.support.paths import REPO

FAST = {"completion": "poll", "poll_interval_seconds": 0.2}


def artifacts(flow_run_id: UUID) -> dict[str, Any]:
    """The flow run's artifacts by key, and its state as the API (and so the UI) has it."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
        run = client.read_flow_run(flow_run_id)
    return {"state": run.state, **{a.key: a for a in found if a.key}}


@pytest.fixture
def examples(tmp_path: Path) -> Path:
    return Path(shutil.copytree(REPO / "data" / "examples", tmp_path / "examples"))


@pytest.fixture
def stack(examples: Path) -> Iterator[LocalStack]:
    ledger = Path(ledger_location(str(examples / "audit"), Settings()))
    with LocalStack(ledger, processing_seconds=0.1, webhooks=False) as running:
        yield running


def test_max_new_images_refuses_before_any_order_and_the_plan_is_shown(
    prefect: str, examples: Path, stack: LocalStack
) -> None:
    from flows.protect import protect

    manifest = str(examples / "manifest.csv")
    state = protect(manifest=manifest, max_new_images=4, return_state=True, **FAST)
    assert state.is_failed()
    message = state.message or ""
    assert "\n" not in message and "send 5 images" in message and "max_new_images (4)" in message
    assert "--max-new-images" in message
    assert stack.stats()["orders_created"] == 0 and "create" not in stack.stats()["requests"]
    with Ledger(examples / "audit" / "ledger.sqlite") as ledger:
        assert ledger.order_count() == 0
    shown = artifacts(state.state_details.flow_run_id)
    assert shown["state"].message == message
    assert "**Refused:**" in shown["protect-plan"].data and "| new images | 5 |" in (
        shown["protect-plan"].data
    )

    done = protect(manifest=manifest, max_new_images=5, return_state=True, **FAST)
    assert done.is_completed(), done.message
    assert done.result().counts == {"processed": 5, "failed": 1}
    plan = artifacts(done.state_details.flow_run_id)["protect-plan"].data
    assert "| orders to create | 1 |" in plan and "Refused" not in plan


def test_a_missing_manifest_fails_with_one_line_naming_it_and_the_fix(
    prefect: str, tmp_path: Path, stack: LocalStack
) -> None:
    from flows.protect import protect

    missing = tmp_path / "nightly" / "manifest.csv"
    state = protect(manifest=str(missing), return_state=True)
    assert state.is_failed()
    shown = artifacts(state.state_details.flow_run_id)["state"].message
    assert shown == state.message and "\n" not in shown
    assert shown.startswith(f"MANIFEST_NOT_FOUND: manifest not found: {missing}; fix: set the")
    assert "manifest parameter" in shown and "prefect.yaml" in shown
    assert not (tmp_path / "nightly").exists()  # nothing written, no ledger


class Gets:
    """S3 GetObject requests of boto3 clients made from the default session, by bucket."""

    def __init__(self, session: boto3.Session) -> None:
        self.counts: Counter[str] = Counter()
        session.events.register("before-parameter-build.s3.GetObject", self._count)

    def _count(self, params: dict[str, Any], **_: Any) -> None:
        self.counts[params["Bucket"]] += 1


@pytest.fixture
def gets() -> Iterator[Gets]:
    """Count the GETs of every S3 client made during the test (the flow's storage too)."""
    saved = boto3.DEFAULT_SESSION
    boto3.setup_default_session()
    assert boto3.DEFAULT_SESSION is not None
    try:
        yield Gets(boto3.DEFAULT_SESSION)
    finally:
        boto3.DEFAULT_SESSION = saved


def keys_below(client: Any, bucket: str, prefix: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


@pytest.mark.parametrize("count", [6, pytest.param(1_050, marks=pytest.mark.slow)])
def test_an_s3_prefix_as_the_source(
    prefect: str, examples: Path, stack: LocalStack, gets: Gets, count: int
) -> None:
    from flows.protect import protect

    assert stack.s3 is not None
    client = s3_client(stack.s3.endpoint_url)
    client.create_bucket(Bucket="uploads")
    formats = ("PNG", "BMP", "TIFF")  # lossless: the images' bytes all differ
    sources: dict[str, bytes] = {}
    for i in range(count):
        fmt = formats[i % 3]
        sources[f"s3://uploads/incoming/{i % 2}/img-{i:04d}.{fmt.lower()}"] = image_bytes(
            fmt, seed=i
        )
    with ThreadPoolExecutor(16) as pool:
        list(
            pool.map(
                lambda item: client.put_object(
                    Bucket="uploads", Key=item[0].removeprefix("s3://uploads/"), Body=item[1]
                ),
                sources.items(),
            )
        )
    client.put_object(Bucket="uploads", Key="incoming/notes.txt", Body=b"not listed")
    audit = examples / "audit"
    source = "s3://uploads/incoming"
    first = protect(source=source, audit=str(audit), max_concurrent_orders=8, **FAST)
    assert first.counts == {"processed": count}, (first.counts, first.failures)
    assert gets.counts["uploads"] == 2 * count  # each object read to fingerprint and upload it
    outputs = keys_below(client, "uploads", "incoming/output/")
    assert len(outputs) == count  # the outputs default to <source>/output ...

    gets.counts.clear()
    again = protect(source=source, audit=str(audit), **FAST)
    assert again.counts == {"skipped": count}, again.counts  # ... which the listing leaves out
    assert gets.counts["uploads"] == 0
    assert stack.stats()["orders_created"] == -(-count // 100)

    images = ds.dataset(audit / "images", partitioning="hive").to_table().to_pandas()
    assert len(images) == 2 * count and set(images.manifest_uri) == {"s3://uploads/incoming/"}
    assert set(images.source) == set(sources)


def test_a_local_folder_as_the_source_with_filters(
    prefect: str, examples: Path, stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.protect import protect

    folder = examples / "images"
    write_image(folder / "drafts" / "skip-me.png", "PNG", seed=99)
    reads: Counter[str] = Counter()
    read = Storage.read_bytes

    def counted(storage: Storage, uri: str) -> bytes:  # a spy: the real read, counted
        reads[uri] += 1
        return read(storage, uri)

    monkeypatch.setattr(Storage, "read_bytes", counted)
    params = {"source": str(folder), "exclude": ["drafts/*"], **FAST}
    first = protect(**params)
    assert first.counts == {"processed": 5}, first.counts
    assert all(n == 2 for n in reads.values()) and len(reads) == 5
    reads.clear()
    assert protect(**params).counts == {"skipped": 5}
    assert reads == Counter()
    assert (folder / "output").is_dir() and (folder / "audit" / "ledger.sqlite").is_file()
    nothing = protect(source=str(folder), include=["2031/*"], **FAST)  # nothing new tonight
    assert (nothing.rows, nothing.counts) == (0, {})


def test_parameters_that_do_not_go_together_fail_in_one_line(prefect: str, examples: Path) -> None:
    from flows.protect import protect

    state = protect(
        manifest=str(examples / "manifest.csv"), source=str(examples), return_state=True
    )
    assert state.is_failed()
    assert state.message == "parameters: Value error, give exactly one of manifest and source"
    assert not (examples / "audit").exists()
