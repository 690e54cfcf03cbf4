"""The ``source_objects`` table: what was read from each object of a listed source, in both
backends, replaced when the object changed, and carried over by ``ledger migrate``."""

from __future__ import annotations

from pathlib import Path

from mori.batch.ledger import Ledger, SourceObject, migrate_ledger


def obj(location: str, size: int = 10, version: str = '"etag-1"', n: int = 1) -> SourceObject:
    return SourceObject(location, size, version, f"sha256:{n:064x}", 8, 6, "JPEG")


def test_remembered_objects_are_found_by_location(ledger: Ledger) -> None:
    assert ledger.source_objects(["s3://b/a.jpg"]) == {}
    ledger.remember_source_objects([obj("s3://b/a.jpg"), obj("/data/b.png", n=2)])
    found = ledger.source_objects(["s3://b/a.jpg", "/data/b.png", "s3://b/other.jpg"])
    assert found == {"s3://b/a.jpg": obj("s3://b/a.jpg"), "/data/b.png": obj("/data/b.png", n=2)}
    assert found["s3://b/a.jpg"].same_object(10, '"etag-1"')
    assert not found["s3://b/a.jpg"].same_object(11, '"etag-1"')
    assert not found["s3://b/a.jpg"].same_object(10, '"etag-2"')


def test_a_changed_object_replaces_its_row(ledger: Ledger) -> None:
    ledger.remember_source_objects([obj("s3://b/a.jpg")])
    changed = obj("s3://b/a.jpg", size=12, version='"etag-2"', n=9)
    ledger.remember_source_objects([changed])
    ledger.remember_source_objects([changed])  # idempotent
    assert ledger.source_objects(["s3://b/a.jpg"]) == {"s3://b/a.jpg": changed}


def test_lookups_larger_than_one_batch(ledger: Ledger) -> None:
    many = [obj(f"s3://b/{i:05d}.jpg", n=i) for i in range(2_500)]
    ledger.remember_source_objects(many)
    found = ledger.source_objects([o.location for o in many] + ["s3://b/none.jpg"])
    assert found == {o.location: o for o in many}


def test_ledger_migrate_copies_the_table(tmp_path: Path, postgres_url: str) -> None:
    source = tmp_path / "ledger.sqlite"
    with Ledger(source) as ledger:
        ledger.remember_source_objects([obj("s3://b/a.jpg"), obj("/data/ü b.png", n=2)])
    report = migrate_ledger(source, postgres_url)
    assert {t.table: t.rows for t in report.tables}["source_objects"] == 2
    with Ledger(postgres_url) as copied:
        assert copied.source_objects(["/data/ü b.png"]) == {
            "/data/ü b.png": obj("/data/ü b.png", n=2)
        }
