"""A manifest read in chunks as tables of rows gives exactly ``load``'s items, keys and errors
(before duplicate rows are told apart), and its extra columns as the audit types them."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

from mori import keys
from mori.batch.audit import extra_column
from mori.batch.manifest import (
    Item,
    ValidationOptions,
    fingerprint_items,
    read_manifest,
    validated_items,
)
from mori.batch.manifest.chunks import ManifestChunks
from mori.batch.manifest.columnar import EXTRA, fingerprints, frame_rows
from mori.batch.manifest.extras import ExtraColumns, conform
from mori.batch.manifest.keying import KEY_TYPE, key_digests, key_text
from mori.batch.storage import Storage, parent
from tests.support.images import write_image, write_manifest

from .test_fastpath import OPTIONS, random_rows

FIXED = ("row", "source", "id", "file_name", "kind", "location", "fingerprint", "sha256")
FIXED += ("bytes", "width", "height", "key", "error_code", "error_message")


def reference(uri: str, options: ValidationOptions) -> list[tuple[Any, ...]]:
    """``load``'s rows without the duplicate check: validated, fingerprinted, keyed."""
    storage = Storage()
    items = validated_items(read_manifest(uri, storage), parent(uri), options)
    fingerprint_items(items, storage, options)
    return [_item_tuple(it, options) for it in items]


def _item_tuple(it: Item, options: ValidationOptions) -> tuple[Any, ...]:
    key = None
    if it.error_code is None and it.fingerprint is not None:
        key = keys.image_key(it.fingerprint, options.processing_options)
    fixed = (it.row_index, it.source, it.caller_id, it.file_name, it.kind, it.location)
    facts = (it.fingerprint, it.sha256, it.bytes, it.width, it.height, key)
    return (*fixed, *facts, it.error_code, it.error_message)


def streamed(
    uri: str, options: ValidationOptions, rows: int
) -> tuple[list[tuple[Any, ...]], pa.Table]:
    """The manifest read ``rows`` at a time into tables of rows: each row as a tuple (in row
    order) and the extra columns conformed to their whole-manifest types."""
    storage, extras, tables, first = Storage(), ExtraColumns(), [], 0
    for frame in ManifestChunks(uri, storage, rows):
        tables.append(frame_rows(frame, parent(uri), options, storage, extras, first))
        first += len(frame)
    types = extras.types()
    conformed = []
    for table in tables:
        columns = {
            name: conform(table.column(EXTRA + name).combine_chunks(), type_)
            if EXTRA + name in table.column_names
            else pa.nulls(len(table), type_)
            for name, type_ in types.items()
        }
        conformed.append(
            pa.table({"row": table.column("row"), "fp": fingerprints(table), **columns})
        )
    whole = pa.concat_tables(tables, promote_options="permissive").sort_by("row")
    extra = pa.concat_tables(conformed).sort_by("row")
    out = []
    for row, fp in zip(whole.to_pylist(), extra.column("fp").to_pylist(), strict=True):
        row["fingerprint"] = fp
        key = row["key"]
        row["key"] = None if key is None else key_text(pa.array([key], KEY_TYPE)).to_pylist()[0]
        out.append(tuple(row[name] for name in FIXED))
    return out, extra


@pytest.mark.parametrize("kind", ["csv", "jsonl", "parquet"])
@pytest.mark.parametrize("options", OPTIONS, ids=["default", "allowed-hosts+options"])
def test_chunks_give_the_rows_load_gives(
    tmp_path: Path, kind: str, options: ValidationOptions
) -> None:
    rows = random_rows(1500, seed=7 + len(kind))
    rows += [dict(r, id=f"dup-{i}") for i, r in enumerate(rows[:100])]  # the same images again
    for n, name in enumerate(["a.jpg", "b.png"]):
        write_image(tmp_path / "images" / name, seed=n)
    rows += [{"source": f"images/{n}", "id": n, "collection": "files"} for n in ("a.jpg", "b.png")]
    rows += [{"source": "images/missing.jpg", "id": "m", "collection": "files"}]
    manifest = str(write_manifest(tmp_path / f"manifest.{kind}", rows))

    expected = reference(manifest, options)
    got, extra = streamed(manifest, options, rows=250)

    assert got == expected
    assert sum(r[-2] is None for r in got) > 400  # many rows pass, plain and row-wise
    assert {"FILE_NOT_FOUND", "URL_PRIVATE_ADDRESS"} <= {r[-2] for r in got}
    assert extra.column("collection").to_pylist() == [str(r["collection"]) for r in rows]


def test_a_frame_with_odd_column_names_goes_row_wise(tmp_path: Path) -> None:
    frame = pd.DataFrame({"source": ["https://cdn.example.com/a.jpg", "ftp://x/y.jpg"]})
    frame[7] = [1, 2]
    rows = frame_rows(frame, str(tmp_path), ValidationOptions(), Storage(), ExtraColumns(), 10)
    assert rows.column("row").to_pylist() == [10, 11]
    assert rows.column("error_code").to_pylist() == [None, "UNSUPPORTED_SCHEME"]
    assert rows.column(EXTRA + "7").to_pylist() == [1, 2]


def test_image_keys_as_bytes_are_the_keys() -> None:
    fingerprints_ = ["url:https://a.example/x.jpg", None, "sha256:" + "0" * 64, "url:é"]
    for options in (None, {"strength": "high"}):
        digests = key_digests(fingerprints_, options)
        expected = [keys.image_key(f, options) if f else None for f in fingerprints_]
        assert key_text(digests).to_pylist() == expected
        assert key_text(digests.slice(1)).to_pylist() == expected[1:]
    ordered = sorted(key_digests([f"url:{i}" for i in range(200)]).to_pylist())
    assert key_text(pa.array(ordered, digests.type)).to_pylist() == sorted(
        keys.image_key(f"url:{i}") for i in range(200)
    )


_VALUES = [
    lambda rng: rng.randint(-5, 5),
    lambda rng: rng.random(),
    lambda rng: float("nan"),
    lambda rng: None,
    lambda rng: rng.choice([True, False]),
    lambda rng: f"t{rng.randint(0, 9)}",
    lambda rng: {"a": 1},
    lambda rng: [1, 2],
]


@pytest.mark.parametrize("seed", range(6))
def test_extra_columns_in_chunks_are_typed_as_the_whole_column(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(300):
        makers = rng.sample(_VALUES, rng.randint(1, 3))
        values = [rng.choice(makers)(rng) for _ in range(rng.randint(1, 12))]
        cuts = sorted(rng.sample(range(1, len(values) + 1), min(len(values), rng.randint(1, 3))))
        chunks = [
            values[a:b] for a, b in zip([0, *cuts], [*cuts, len(values)], strict=True) if a < b
        ]
        extras = ExtraColumns()
        arrays = [extras.chunk("c", chunk) for chunk in chunks]
        type_ = extras.types()["c"]
        got = pa.concat_arrays([conform(a, type_) for a in arrays])
        numbers = any(type(v) in (int, float) and v == v for v in values)
        if any(type(v) is bool for v in values) and numbers:
            assert type_ == pa.string()  # Arrow's inference of this mix depends on the order
            continue
        whole = extra_column(values)
        assert got.type == whole.type
        assert _same(got.to_pylist(), whole.to_pylist()), (values, chunks)


def _same(a: list[Any], b: list[Any]) -> bool:
    """Equal lists, NaN equal to NaN."""
    return len(a) == len(b) and all(
        x == y
        or (isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y))
        for x, y in zip(a, b, strict=True)
    )
