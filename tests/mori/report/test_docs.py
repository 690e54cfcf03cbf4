"""Every query in docs/AUDIT.md runs, against an audit holding an older-schema partition.

The ``python`` and ``sql`` code blocks are taken from the markdown itself, so the documentation
and the tests cannot drift apart. The latency query must also agree with the report's figures.
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from mori.batch.audit import IMAGES_SCHEMA, ORDERS_SCHEMA, RUNS_SCHEMA
from mori.report import SUMMARY_SCHEMA, make_report
from tests.support.paths import REPO

from .helpers import DAY1, DAY2, OLD_DAY, write_local

DOC = REPO / "docs" / "AUDIT.md"
_BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def blocks(language: str) -> list[str]:
    return [
        code for lang, code in _BLOCK.findall(DOC.read_text(encoding="utf-8")) if lang == language
    ]


PYTHON, SQL = blocks("python"), blocks("sql")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``audit/`` (with the older partition) and its ``report/``."""
    root = tmp_path_factory.mktemp("docs")
    audit = write_local(root, old=True)
    make_report(str(audit), str(root / "report"))
    return root


@pytest.fixture
def workdir(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The current folder is the one holding ``audit/`` and ``report/``."""
    monkeypatch.chdir(folder)
    return folder


def test_the_doc_has_the_examples_it_promises() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert len(PYTHON) >= 3 and len(SQL) >= 7
    assert any("pd.read_parquet" in code for code in PYTHON)
    assert any("pyarrow.dataset" in code for code in PYTHON)
    assert "read_parquet('audit/images/**/*.parquet', hive_partitioning = true" in text


@pytest.mark.parametrize("index", range(len(PYTHON)))
def test_python_example_runs(workdir: Path, index: int, capsys: pytest.CaptureFixture[str]) -> None:
    code = PYTHON[index]
    exec(compile(code, f"{DOC.name}:python[{index}]", "exec"), {"__name__": "__doc_example__"})
    assert capsys.readouterr().out.strip(), "the example prints its answer"


@pytest.mark.parametrize("index", range(len(SQL)))
def test_sql_example_runs_in_duckdb(workdir: Path, index: int) -> None:
    rows = duckdb.connect().execute(SQL[index]).fetchall()
    assert rows, f"query {index} returned nothing:\n{SQL[index]}"


def test_documented_queries_agree_with_the_report(workdir: Path) -> None:
    con = duckdb.connect()
    latency = next(q for q in SQL if "quantile_cont" in q)
    got = {day: (n, p50, p95) for day, n, p50, p95 in con.execute(latency).fetchall()}
    assert got[OLD_DAY] == (2, 30.0, 30.0)
    assert got[DAY1][:2] == (4, 20.0) and got[DAY1][2] == pytest.approx(54.0)
    assert got[DAY2] == (3, 5.0, 5.0)

    summary = next(q for q in SQL if "summary.parquet" in q)
    by_day = {row[0]: row for row in con.execute(summary).fetchall()}
    assert by_day[DAY1][1:4] == (11, 4, 3) and by_day[DAY1][4] == {
        "INVALID_IMAGE": 2,
        "FILE_NOT_FOUND": 1,
    }
    assert by_day[DAY1][5] == pytest.approx(got[DAY1][2])

    api = next(q for q in SQL if "api_retries" in q and "audit/runs" in q)
    per_day = {row[0]: row[1:] for row in con.execute(api).fetchall()}
    assert per_day[DAY1] == (2, 24, 3, 1)
    assert per_day[OLD_DAY] == (1, None, None, None)  # the older partition had no API columns

    versions = next(q for q in SQL if "schema_version" in q and "GROUP BY schema_version" in q)
    assert [row[:2] for row in con.execute(versions).fetchall()] == [(0, 3), (1, 15)]


def test_without_union_by_name_an_older_first_file_hides_newer_columns(workdir: Path) -> None:
    """Why the doc insists on ``union_by_name``: the first file's columns would win."""
    query = "SELECT sum(bytes) FROM read_parquet('audit/images/**/*.parquet', hive_partitioning=1)"
    with pytest.raises(duckdb.BinderException):
        duckdb.connect().execute(query).fetchall()


def _doc_type(t: pa.DataType) -> str:
    if pa.types.is_timestamp(t):
        return "timestamp[ms, UTC]"
    if pa.types.is_list(t):
        return f"list&lt;{_doc_type(t.value_type)}&gt;"
    if pa.types.is_map(t):
        return f"map&lt;{_doc_type(t.key_type)}, {_doc_type(t.item_type)}&gt;"
    return {"double": "float64", "date32[day]": "date32"}.get(str(t), str(t))


def _documented(heading: str) -> dict[str, str]:
    """``{column: type}`` from the first table under the heading starting with ``heading``."""
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index(heading) :]
    columns: dict[str, str] = {}
    for line in section.splitlines()[1:]:
        if columns and not line.startswith("|"):
            break  # the end of the section's first table
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| `") and len(cells) == 3:
            for name in re.findall(r"`([^`]+)`", cells[0]):
                columns[name] = cells[1]
    return columns


@pytest.mark.parametrize(
    ("heading", "schema"),
    [
        ("## `images`", IMAGES_SCHEMA),
        ("## `orders`", ORDERS_SCHEMA),
        ("## `runs`", RUNS_SCHEMA),
        ("### `summary.parquet`", SUMMARY_SCHEMA),
    ],
)
def test_every_column_is_documented_with_its_type(heading: str, schema: pa.Schema) -> None:
    documented = _documented(heading)
    for fld in schema:
        assert fld.name in documented, f"{fld.name} is not documented under {heading}"
        assert documented[fld.name] == _doc_type(fld.type), fld.name
    assert set(documented) == set(schema.names), "documented columns that do not exist"
