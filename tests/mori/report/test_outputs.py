"""The report's files: real charts, an escaped HTML page, formula-safe CSVs and artifacts."""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from html.parser import HTMLParser
from pathlib import Path

import boto3
import pytest
from PIL import Image

from mori.batch.audit import write_table
from mori.batch.storage import Storage
from mori.report import Report, build_report, csv_safe, load_audit, write_report
from mori.report.charts import CHARTS, COLOURS, DPI, SIZE
from mori.report.markdown import md_escape, summary_markdown, table_rows
from mori.report.write import FAILED_ROWS_CSV, SUMMARY_CSV, default_out, to_csv, write_stream

from .helpers import HOSTILE_MESSAGE, HOSTILE_NAME, HOSTILE_SOURCE, failed, image, processed

SERIES = {
    "daily_volume": COLOURS["processed"],
    "failure_codes": COLOURS["failed"],
    "latency": COLOURS["latency"],
    "api_usage": COLOURS["api_requests"],
}


def assert_real_chart(png: bytes, series_colour: str | None = None, busy: bool = True) -> None:
    """A PNG of the expected size with many colours, showing the series colour when given."""
    with Image.open(io.BytesIO(png)) as img:
        assert img.format == "PNG"
        assert img.size == (int(SIZE[0] * DPI), int(SIZE[1] * DPI))
        rgb = img.convert("RGB")
    colours = rgb.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50, "a blank or single-colour image"
    most = max(count for count, _ in colours)
    if busy:
        assert most < 0.9 * rgb.width * rgb.height, "nearly a single colour"
    if series_colour is not None:
        want = tuple(int(series_colour[i : i + 2], 16) for i in (1, 3, 5))
        drawn = sum(count for count, colour in colours if colour == want)
        assert drawn > 200, f"the data ({series_colour}) is not drawn"


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.images: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "img":
            self.images.append(dict(attrs)["src"] or "")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


@pytest.fixture
def written(report: Report, tmp_path: Path) -> Path:
    return Path(write_report(report, str(tmp_path / "out")).out_uri)


def test_every_chart_is_a_real_image_of_the_data(written: Path) -> None:
    for name in CHARTS:
        assert_real_chart((written / f"{name}.png").read_bytes(), SERIES[name])


def test_charts_of_an_empty_period_are_still_images(tmp_path: Path) -> None:
    report = build_report(load_audit(str(tmp_path / "none")))
    out = Path(write_report(report, str(tmp_path / "out")).out_uri)
    for name in CHARTS:
        assert_real_chart((out / f"{name}.png").read_bytes(), busy=False)


def test_the_page_escapes_every_value_and_links_its_files(written: Path) -> None:
    page = (written / "report.html").read_text(encoding="utf-8")
    assert HOSTILE_NAME not in page and "<script" not in page.lower()
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;.jpg" in page
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    parser = _Page()
    parser.feed(page)
    assert "script" not in parser.tags
    assert parser.images == [f"{name}.png" for name in CHARTS]
    for src in parser.images:
        assert (written / src).is_file()
    text = "".join(parser.text)
    assert HOSTILE_NAME in text and HOSTILE_SOURCE in text  # shown as text, literally


@pytest.mark.parametrize("prefix", ["=", "+", "-", "@", "\t", "\r"])
def test_csv_safe_neutralises_formula_prefixes(prefix: str) -> None:
    assert csv_safe(f"{prefix}SUM(A1:A9)") == f"'{prefix}SUM(A1:A9)"


def test_csv_safe_leaves_everything_else_alone() -> None:
    for value in ("INVALID_IMAGE", "images/a.jpg", "", " =not first", "'quoted"):
        assert csv_safe(value) == value
    for value in (-5, -0.5, None, 3):
        assert csv_safe(value) == value


def test_written_csvs_are_formula_safe(written: Path) -> None:
    with (written / FAILED_ROWS_CSV).open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 5
    hostile = next(r for r in rows if r["error_code"] == "UNSUPPORTED_FORMAT")
    assert hostile["source"] == "'" + HOSTILE_SOURCE
    assert hostile["error_message"] == "'" + HOSTILE_MESSAGE
    assert hostile["file_name"] == HOSTILE_NAME  # not a formula: kept as is
    for row in rows:
        for cell in row.values():
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell
    with (written / SUMMARY_CSV).open(encoding="utf-8", newline="") as fh:
        summary = list(csv.DictReader(fh))
    assert [r["grain"] for r in summary] == ["run", "run", "run", "day", "day"]
    assert summary[3]["failed_by_code"] == "INVALID_IMAGE=2; FILE_NOT_FOUND=1"


def test_to_csv_neutralises_cells_of_any_column() -> None:
    import pandas as pd

    frame = pd.DataFrame({"a": ["=1+2", "-3", "+x"], "b": [-1, 2, None], "@c": ["ok", "\tx", None]})
    text = to_csv(frame).decode("utf-8")
    assert text.splitlines() == ["a,b,'@c", "'=1+2,-1.0,ok", "'-3,2.0,'\tx", "'+x,,"]


def test_hostile_error_codes_in_charts_markdown_and_table(tmp_path: Path) -> None:
    """Error codes come from MORI too: ``$`` (mathtext), ``|`` (markdown), ``=`` (formulas)."""
    audit, day = str(tmp_path / "audit"), date(2026, 1, 2)
    rows = [
        processed("r", 0, day, "o1", 3),
        failed("r", 1, day, "$\\frac{1}{0}$"),
        failed("r", 2, day, "=HYPERLINK(1)|x"),
        failed("r", 3, day, "<b>BOLD</b>"),
        image("r", 4, "failed", day, error_code=None, error_message="no code at all"),
    ]
    write_table(Storage(), audit, rows, "r", day)
    report = build_report(load_audit(audit))
    out = Path(write_report(report, str(tmp_path / "out")).out_uri)
    assert_real_chart((out / "failure_codes.png").read_bytes(), COLOURS["failed"])
    markdown = summary_markdown(report, "file:///x/report.html")
    assert "<b>" not in markdown and "\\<b\\>BOLD\\</b\\>" in markdown
    table_lines = [line for line in markdown.splitlines() if "HYPERLINK" in line]
    assert len(table_lines) == 1 and table_lines[0].count("|") - table_lines[0].count("\\|") == 3
    json.dumps(table_rows(report))  # JSON-safe


def test_table_artifact_cells_are_formula_safe(tmp_path: Path) -> None:
    audit, day = str(tmp_path / "audit"), date(2026, 1, 2)
    write_table(Storage(), audit, [failed("r", 0, day, "=EVIL()")], "r", day)
    cells = table_rows(build_report(load_audit(audit)))
    assert cells[0]["failed_by_code"] == "'=EVIL()=1"


def test_md_escape() -> None:
    assert md_escape("<script>") == "\\<script\\>"
    assert md_escape("a|b\nc") == "a\\|b c"
    assert md_escape("[x](javascript:alert(1))") == "\\[x\\]\\(javascript:alert\\(1\\)\\)"


def test_markdown_summary_has_the_figures(report: Report) -> None:
    text = summary_markdown(report, "file:///tmp/out/report.html")
    assert "| images (rows) | 15 |" in text
    assert "| API retries | 5 |" in text
    assert "| INVALID\\_IMAGE | 2 |" in text
    assert "| 2026-03-01 | 2 | 11 | 4 | 3 | 3 | 1 | 4 | 20.00 | 54.00 | 24 | 3 |" in text


def test_table_rows_are_most_recent_first(report: Report) -> None:
    rows = table_rows(report)
    assert [r["run_id"] for r in rows] == ["run-c", "run-b", "run-a"]
    assert rows[2]["failed_by_code"] == "FILE_NOT_FOUND=1; INVALID_IMAGE=1"
    assert rows[2]["latency_p95_seconds"] == 54.0 and rows[1]["latency_p50_seconds"] is None


def test_default_out_is_beside_the_audit(tmp_path: Path) -> None:
    assert default_out(str(tmp_path / "m" / "audit")) == str(tmp_path / "m" / "report")
    assert default_out("s3://b/x/audit/") == "s3://b/x/report"


def test_the_page_shows_the_first_failed_rows_and_the_csv_all(tmp_path: Path) -> None:
    audit, day = str(tmp_path / "audit"), date(2026, 1, 2)
    write_table(Storage(), audit, [failed("r", n, day, "E") for n in range(250)], "r", day)
    report = build_report(load_audit(audit))
    out = Path(write_report(report, str(tmp_path / "out")).out_uri)
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "The first 200 of 250;" in page
    problems = page[page.index("<h2>Failed and pending rows</h2>") :]
    assert problems.count("<tr>") == 1 + 200  # the header and 200 rows
    with (out / FAILED_ROWS_CSV).open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["row_index"]) for r in rows] == list(range(250))


def test_write_stream_uploads_in_parts_to_s3(s3_bucket: str) -> None:
    """A CSV larger than one upload part goes to S3 whole, with its content type."""
    data = b"".join(f"row {i},x\n".encode() for i in range(1_000_000))  # ~11 MiB: several parts
    uri = f"s3://{s3_bucket}/report/failed_rows.csv"
    write_stream(Storage(), uri, io.BytesIO(data), "text/csv; charset=utf-8")
    head = boto3.client("s3").head_object(Bucket=s3_bucket, Key="report/failed_rows.csv")
    assert head["ContentType"] == "text/csv; charset=utf-8" and "-" in head["ETag"]  # multipart
    assert Storage().read_bytes(uri) == data


def test_write_stream_replaces_a_local_file_atomically(tmp_path: Path) -> None:
    target = tmp_path / "out" / "failed_rows.csv"
    write_stream(Storage(), str(target), io.BytesIO(b"old\n"), "text/csv")
    write_stream(Storage(), str(target), io.BytesIO(b"new\n" * 300_000), "text/csv")
    assert target.read_bytes() == b"new\n" * 300_000
    assert [p.name for p in target.parent.iterdir()] == ["failed_rows.csv"]  # no temp file left
    assert target.stat().st_mode & 0o777 == 0o644
