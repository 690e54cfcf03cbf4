"""Presigned uploads and results, the full order path, URL expiry and result retention."""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Callable

import httpx
import numpy as np
import pytest
from PIL import Image

from mori.emulator import EmulatorServer, psnr
from tests.support.clock import FakeClock
from tests.support.images import make_image

from .conftest import Api, wait_stat

EXPIRED_XML = "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"


def _tamper(url: str) -> str:
    head, _, sig = url.rpartition("sig=")
    return head + "sig=" + ("0" if sig[0] != "0" else "1") + sig[1:]


def test_full_path_every_format(api: Api) -> None:
    files = {
        "photo.jpg": make_image("JPEG"),
        "grey.jpeg": make_image("JPEG", "L"),
        "plain.png": make_image("PNG"),
        "alpha.png": make_image("PNG", "RGBA"),
        "grey.png": make_image("PNG", "L"),
        "web.webp": make_image("WEBP"),
        "scan.tiff": make_image("TIFF"),
        "old.bmp": make_image("BMP"),
        "사진 #1.png": make_image("PNG"),
    }
    order_id = api.submit(files)
    info = api.wait_finished(order_id)
    assert info["status"] == "complete", info
    download = api.http.get(f"/api/v2/orders/{order_id}/download")
    assert download.status_code == 200
    data = download.json()["data"]
    assert data["expiresAt"].endswith("Z")
    archive = httpx.get(data["downloadUrl"])
    assert archive.status_code == 200
    assert archive.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(archive.content)) as zipped:
        assert zipped.namelist() == [f"{i}/{name}" for i, name in enumerate(files)]
        for entry, (name, source) in zip(zipped.namelist(), files.items(), strict=True):
            output = zipped.read(entry)
            before = Image.open(io.BytesIO(source))
            after = Image.open(io.BytesIO(output))
            assert after.format == before.format, name
            assert after.size == before.size, name
            assert after.mode == before.mode, name
            assert not np.array_equal(np.asarray(before), np.asarray(after)), name
            assert psnr(source, output) >= 35, name


def test_upload_with_bad_signature_is_403(api: Api) -> None:
    url = api.create(["a.png"]).json()["data"]["files"][0]["uploadUrl"]
    response = httpx.put(_tamper(url), content=b"x")
    assert response.status_code == 403
    assert "<Code>SignatureDoesNotMatch</Code>" in response.text
    assert httpx.put(url.split("?")[0], content=b"x").status_code == 403


def test_upload_url_for_another_file_is_403(api: Api) -> None:
    files = api.create(["a.png", "b.png"]).json()["data"]["files"]
    path_b = files[1]["uploadUrl"].split("?")[0]
    query_a = files[0]["uploadUrl"].split("?")[1]
    assert httpx.put(f"{path_b}?{query_a}", content=b"x").status_code == 403


def test_upload_after_confirm_is_403(api: Api) -> None:
    data = api.create(["a.png"]).json()["data"]
    url = data["files"][0]["uploadUrl"]
    assert httpx.put(url, content=make_image("PNG")).status_code == 200
    assert httpx.put(url, content=make_image("PNG")).status_code == 200  # re-upload is fine
    assert api.confirm(data["orderId"]).status_code == 200
    response = httpx.put(url, content=make_image("PNG"))
    assert response.status_code == 403 and "AccessDenied" in response.text


def test_upload_and_result_urls_expire(make_server: Callable[..., EmulatorServer]) -> None:
    clock = FakeClock()
    server = make_server(clock=clock, upload_url_ttl=600, download_url_ttl=300)
    api = Api(server)
    data = api.create(["a.png", "b.png"]).json()["data"]
    first, second = (f["uploadUrl"] for f in data["files"])
    assert httpx.put(first, content=make_image("PNG")).status_code == 200
    clock.advance(601)
    expired = httpx.put(second, content=make_image("PNG"))
    assert expired.status_code == 403
    assert EXPIRED_XML in expired.text
    assert expired.headers["content-type"].startswith("application/xml")

    order_id = api.submit({"a.png": make_image("PNG")})
    api.wait_finished(order_id)
    url = api.http.get(f"/api/v2/orders/{order_id}/download").json()["data"]["downloadUrl"]
    assert httpx.get(url).status_code == 200
    assert httpx.get(_tamper(url)).status_code == 403
    clock.advance(301)
    response = httpx.get(url)
    assert response.status_code == 403 and EXPIRED_XML in response.text


def test_results_expire_after_retention(make_server: Callable[..., EmulatorServer]) -> None:
    clock = FakeClock()
    server = make_server(clock=clock, result_retention=7 * 86400)
    api = Api(server)
    order_id = api.submit({"a.png": make_image("PNG")})
    assert api.wait_finished(order_id)["status"] == "complete"
    url = api.http.get(f"/api/v2/orders/{order_id}/download").json()["data"]["downloadUrl"]
    clock.advance(7 * 86400 - 1)
    assert api.order(order_id)["status"] == "complete"
    clock.advance(1)
    assert api.order(order_id)["status"] == "expired"
    response = api.http.get(f"/api/v2/orders/{order_id}/download")
    assert response.status_code == 410 and response.json()["code"] == "ORDER_EXPIRED"
    assert httpx.get(url).status_code in (403, 404)


@pytest.mark.parametrize("kind", ["upload", "result"])
def test_storage_urls_need_expires_and_sig(server: EmulatorServer, kind: str) -> None:
    method, key = ("PUT", "temp/1/0/a.png") if kind == "upload" else ("GET", "1.zip")
    response = httpx.request(method, f"{server.url}/_s3/{kind}/{key}?expires=1")
    assert response.status_code == 403
    assert "<Code>AccessDenied</Code>" in response.text


def test_waiting_orders_do_not_occupy_workers(make_server: Callable[..., EmulatorServer]) -> None:
    server = make_server(processing_seconds=0.4, processing_workers=1)
    api = Api(server)
    started = time.monotonic()
    order_ids = [api.submit({f"{i}.png": make_image("PNG")}) for i in range(5)]
    for order_id in order_ids:
        assert api.wait_finished(order_id)["status"] == "complete"
    assert time.monotonic() - started < 1.5  # not 5 x 0.4 s one after another


def test_copy_mode_returns_the_inputs_unchanged(
    make_server: Callable[..., EmulatorServer],
) -> None:
    server = make_server(processing_mode="copy")
    api = Api(server)
    files = {"a.png": make_image("PNG"), "b.jpg": b"not even an image"}  # nothing is decoded
    order_id = api.submit(files)
    assert api.wait_finished(order_id)["status"] == "complete"
    with zipfile.ZipFile(io.BytesIO(api.download(order_id))) as archive:
        assert archive.namelist() == ["0/a.png", "1/b.jpg"]
        assert [archive.read(name) for name in archive.namelist()] == list(files.values())
        assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_STORED}
    api.wait_finished(api.submit({"again.png": files["a.png"]}))
    wait_stat(server, "duplicate_files", 1)
    assert server.stats()["files_processed"] == 3
    info = api.wait_finished(api.submit({"empty.png": b""}))
    assert info["status"] == "failed" and info["errors"][0]["code"] == "INVALID_IMAGE"
