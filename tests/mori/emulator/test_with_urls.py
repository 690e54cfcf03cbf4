"""``POST /api/v2/orders/with-urls``: allowlisted fetches, no upload, no confirm."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable

import httpx
import pytest

from mori.emulator import EmulatorServer, psnr
from tests.support.images import make_image

from .conftest import Api, ImageHost

pytestmark = pytest.mark.generations("g1")


def test_url_order_is_processed(
    make_server: Callable[..., EmulatorServer], image_host: ImageHost
) -> None:
    image_host.files.update({"/a.jpg": make_image("JPEG"), "/b.png": make_image("PNG", "RGBA")})
    server = make_server(url_allowlist=frozenset({image_host.host}))
    api = Api(server)
    files = [
        {"fileName": "a.jpg", "originalFileUrl": f"{image_host.base_url}/a.jpg"},
        {"fileName": "b.png", "url": f"{image_host.base_url}/b.png"},
    ]
    response = api.post("/api/v2/orders/with-urls", {"files": files})
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["status"] == "inProgress"
    assert all("uploadUrl" not in f for f in data["files"])
    assert api.wait_finished(data["orderId"])["status"] == "complete"
    url = api.http.get(f"/api/v2/orders/{data['orderId']}/download").json()["data"]["downloadUrl"]
    with zipfile.ZipFile(io.BytesIO(httpx.get(url).content)) as archive:
        assert archive.namelist() == ["0/a.jpg", "1/b.png"]
        assert psnr(image_host.files["/a.jpg"], archive.read("0/a.jpg")) >= 35
    assert server.stats()["orders_confirmed"] == 1


def test_fetch_failure_fails_the_order(
    make_server: Callable[..., EmulatorServer], image_host: ImageHost
) -> None:
    image_host.files["/ok.png"] = make_image("PNG")
    server = make_server(url_allowlist=frozenset({"127.0.0.1"}))
    api = Api(server)
    files = [
        {"fileName": "ok.png", "fileUrl": f"{image_host.base_url}/ok.png"},
        {"fileName": "gone.png", "originalFileUrl": f"{image_host.base_url}/gone.png"},
    ]
    order_id = api.post("/api/v2/orders/with-urls", {"files": files}).json()["data"]["orderId"]
    info = api.wait_finished(order_id)
    assert info["status"] == "failed"
    assert info["errors"] == [{"code": "FETCH_FAILED", "message": info["errors"][0]["message"]}]
    assert "1/gone.png" in info["errors"][0]["message"] and "404" in info["errors"][0]["message"]


def test_hosts_off_the_allowlist_are_refused(api: Api, image_host: ImageHost) -> None:
    for url in (
        f"{image_host.base_url}/a.png",  # the shared server allows no host at all
        "ftp://example.com/a.png",
        "not a url",
    ):
        files = [{"fileName": "a.png", "originalFileUrl": url}]
        response = api.post("/api/v2/orders/with-urls", {"files": files})
        assert response.status_code == 400
        assert response.json()["code"] == "INVALID_REQUEST"
    files = [{"fileName": "a.png", "originalFileUrl": f"{image_host.base_url}/a.png"}]
    body = api.post("/api/v2/orders/with-urls", {"files": files}).json()
    assert "not allowed" in body["message"]
    assert body["errors"]["propertyName"] == "files[0].originalFileUrl"


def test_allowlist_port_must_match(
    make_server: Callable[..., EmulatorServer], image_host: ImageHost
) -> None:
    server = make_server(url_allowlist=frozenset({"127.0.0.1:1"}))
    api = Api(server)
    files = [{"fileName": "a.png", "originalFileUrl": f"{image_host.base_url}/a.png"}]
    assert api.post("/api/v2/orders/with-urls", {"files": files}).status_code == 400


def test_url_order_validation(api: Api) -> None:
    response = api.post("/api/v2/orders/with-urls", {"files": [{"fileName": "a.png"}]})
    assert response.status_code == 400
    assert "files[0].originalFileUrl: Field required" in response.json()["message"]
    assert response.json()["errors"]["propertyName"] == "files[0].originalFileUrl"
