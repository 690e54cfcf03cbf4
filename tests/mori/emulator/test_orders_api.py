"""Orders API over real HTTP, in both generations: auth, validation (with the ``errors``
detail), idempotency, confirm and download rules."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import httpx
import pytest

from mori.emulator import EmulatorServer
from tests.support.images import make_image

from .conftest import OTHER_KEY, Api

# -- auth -------------------------------------------------------------------------------------


@pytest.mark.parametrize("header", [None, "Bearer wrong-key", "Basic test-key", "test-key"])
def test_missing_or_unknown_key_is_401(api: Api, header: str | None) -> None:
    headers = {"X-Idempotency-Key": "k"} | ({"Authorization": header} if header else {})
    body = {"idempotencyKey": "k"}
    for method, path in (("POST", api.create_path), ("GET", "/api/v2/orders/1")):
        response = httpx.request(method, f"{api.http.base_url}{path}", headers=headers, json=body)
        assert "API key" in api.error(response, 401, "UNAUTHORIZED")


# -- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "fragment", "property_name"),
    [
        ({"files": []}, "1 to 100", "files"),
        ({"files": [{"fileName": f"{i}.jpg"} for i in range(101)]}, "got 101", "files"),
        ({"files": [{"fileName": "a.gif"}]}, "files[0].fileName 'a.gif'", "files[0].fileName"),
        (
            {"files": [{"fileName": "a.png"}, {"fileName": "noext"}]},
            "files[1].fileName",
            "files[1].fileName",
        ),
        ({"files": [{"fileName": ""}]}, "must not be empty", "files[0].fileName"),
        ({"files": [{"fileName": "dir/a.png"}]}, "without a path", "files[0].fileName"),
        ({"files": [{"fileName": "a.png"}], "orderName": "n" * 65}, "orderName", "orderName"),
        ({"files": [{"name": "a.png"}]}, "files[0].fileName: Field required", "files[0].fileName"),
        ({"orderName": "x"}, "files: Field required", "files"),
        ({"files": [{"fileName": "a.png"}], "options": "high"}, "options", "options"),
        (["a.png"], "body", "body"),
    ],
)
def test_create_validation(api: Api, body: Any, fragment: str, property_name: str) -> None:
    response = api.post(api.create_path, body)
    assert fragment in api.error(response, 400, "INVALID_REQUEST")
    errors = response.json()["errors"]
    assert errors["propertyName"] == property_name
    assert isinstance(errors["message"], str) and errors["message"]


def test_errors_detail_names_the_problem(api: Api) -> None:
    errors = api.create(["a.gif"]).json()["errors"]
    assert errors["propertyName"] == "files[0].fileName"
    assert "unsupported extension" in errors["message"]
    errors = api.create(["a.png"], orderName="n" * 65).json()["errors"]
    assert errors == {
        "propertyName": "orderName",
        "message": "must be at most 64 characters, got 65",
    }


def test_valid_edge_cases_are_accepted(api: Api) -> None:
    names = [f"IMG_{i}.{ext}" for i, ext in enumerate(["JPG", "jpeg", "Png", "webp", "TIFF"])]
    response = api.create(names * 20, orderName="n" * 64, options={"strength": "high"})
    assert response.status_code == 200, response.text
    assert len(response.json()["data"]["files"]) == 100


def test_malformed_json_is_invalid_request(api: Api) -> None:
    paths = [api.create_path, api.confirm_path] + ([] if api.g3 else ["/api/v2/orders/with-urls"])
    for path in paths:
        response = api.http.post(
            path, content=b'{"files": [', headers={"X-Idempotency-Key": str(uuid.uuid4())}
        )
        assert "not valid JSON" in api.error(response, 400, "INVALID_REQUEST")
        assert response.json()["errors"]["propertyName"] == "body"


def test_missing_idempotency_key(api: Api) -> None:
    body = {"files": [{"fileName": "a.png"}]}
    paths = [api.create_path, api.confirm_path] + ([] if api.g3 else ["/api/v2/orders/with-urls"])
    for path in paths:
        api.error(api.http.post(path, json=body), 400, "IDEMPOTENCY_KEY_REQUIRED")


@pytest.mark.generations("g3")
def test_g3_reads_the_key_from_the_body_only(api: Api) -> None:
    body = {"files": [{"fileName": "a.png"}]}
    response = api.http.post(api.create_path, json=body, headers={"X-Idempotency-Key": "k"})
    api.error(response, 400, "IDEMPOTENCY_KEY_REQUIRED")
    assert response.json()["errors"]["propertyName"] == "idempotencyKey"
    for key in ("", 42, None):
        response = api.http.post(api.create_path, json={**body, "idempotencyKey": key})
        api.error(response, 400, "IDEMPOTENCY_KEY_REQUIRED")


def test_body_idempotency_key_is_accepted(api: Api) -> None:
    body = {"files": [{"fileName": "a.png"}], "idempotencyKey": str(uuid.uuid4())}
    first = api.http.post(api.create_path, json=body)
    second = api.http.post(api.create_path, json=body)
    assert first.status_code == 200
    assert second.json() == first.json()


# -- create -----------------------------------------------------------------------------------


def test_create_response_shape(api: Api) -> None:
    response = api.create(["a.png", "b c.jpg"], orderName="batch-1")
    assert response.status_code == 200
    body = response.json()
    if api.g3:
        assert set(body) == {"data"}
    else:
        assert body["success"] is True
    data = body["data"]
    assert data["orderId"].isdigit() and int(data["orderId"]) >= 100000001
    assert data["orderName"] == "batch-1"
    assert data["status"] == "pending"
    first, second = data["files"]
    assert isinstance(first["fileId"], int) and second["fileId"] == first["fileId"] + 1
    assert first["fileKey"] == f"temp/{data['orderId']}/0/a.png"
    assert second["fileKey"] == f"temp/{data['orderId']}/1/b c.jpg"
    assert "/_s3/upload/" in first["uploadUrl"] and "sig=" in first["uploadUrl"]


def test_default_order_name(api: Api) -> None:
    data = api.create(["a.png"]).json()["data"]
    assert data["orderName"].startswith("anti_ai_")
    assert len(data["orderName"]) == len("anti_ai_YYYY-MM-DD")


def test_order_ids_increment(api: Api) -> None:
    first = int(api.create(["a.png"]).json()["data"]["orderId"])
    second = int(api.create(["a.png"]).json()["data"]["orderId"])
    assert second == first + 1


# -- idempotency ------------------------------------------------------------------------------


def test_same_key_replays_the_original_response(server: EmulatorServer, api: Api) -> None:
    key = str(uuid.uuid4())
    first = api.create(["a.png"], key=key)
    created = server.stats()["orders_created"]
    replay = api.create(["other.jpg", "x.png"], key=key, orderName="different")
    assert replay.status_code == first.status_code == 200
    assert replay.content == first.content
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert server.stats()["orders_created"] == created


def test_idempotency_is_scoped_per_api_key(server: EmulatorServer, api: Api) -> None:
    key = str(uuid.uuid4())
    mine = api.create(["a.png"], key=key).json()["data"]["orderId"]
    other = Api(server, OTHER_KEY)
    theirs = other.create(["a.png"], key=key).json()["data"]["orderId"]
    assert mine != theirs
    assert other.http.get(f"/api/v2/orders/{mine}").status_code == 404


def test_failed_request_records_nothing(api: Api) -> None:
    key = str(uuid.uuid4())
    api.error(api.create(["a.gif"], key=key), 400, "INVALID_REQUEST")
    assert api.create(["a.png"], key=key).status_code == 200


def test_concurrent_creates_with_one_key_make_one_order(server: EmulatorServer) -> None:
    key = str(uuid.uuid4())
    before = server.stats()["orders_created"]
    results: list[str] = []
    barrier = threading.Barrier(8)

    def create() -> None:
        client = Api(server)
        barrier.wait()
        results.append(client.create(["a.png"], key=key).json()["data"]["orderId"])

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8 and len(set(results)) == 1
    assert server.stats()["orders_created"] == before + 1


# -- confirm ----------------------------------------------------------------------------------


def test_confirm_unknown_order_is_404(server: EmulatorServer, api: Api) -> None:
    api.error(api.confirm("999999999"), 404, "ORDER_NOT_FOUND")
    order_id = api.create(["a.png"]).json()["data"]["orderId"]
    api.error(Api(server, OTHER_KEY).confirm(order_id), 404, "ORDER_NOT_FOUND")


def test_confirm_before_all_uploads_is_400(api: Api) -> None:
    data = api.create(["a.png", "b.png"]).json()["data"]
    httpx.put(data["files"][0]["uploadUrl"], content=make_image("PNG"))
    message = api.error(api.confirm(data["orderId"]), 400, "FILES_NOT_UPLOADED")
    assert "1/b.png" in message and "0/a.png" not in message


def test_confirm_replay_and_conflict(api: Api) -> None:
    order_id = api.submit({"a.png": make_image("PNG")})
    key = str(uuid.uuid4())
    # submit() confirmed with its own key; a NEW key on a non-pending order conflicts
    assert "inProgress" in api.error(api.confirm(order_id, key), 409, "INVALID_ORDER_STATUS")
    api.wait_finished(order_id)
    # a first confirm's key replays its original answer, even after completion
    data = api.create(["a.png"]).json()["data"]
    httpx.put(data["files"][0]["uploadUrl"], content=make_image("PNG"))
    first = api.confirm(data["orderId"], key)
    assert first.json()["data"] == {"orderId": data["orderId"], "status": "inProgress"}
    api.wait_finished(data["orderId"])
    assert api.confirm(data["orderId"], key).content == first.content


def test_confirm_without_order_id_is_invalid(api: Api) -> None:
    response = api.post(api.confirm_path, {})
    assert "orderId" in api.error(response, 400, "INVALID_REQUEST")
    assert response.json()["errors"]["propertyName"] == "orderId"
    response = api.post(api.confirm_path, {"orderId": " "})
    assert response.json()["errors"] == {
        "propertyName": "orderId",
        "message": "orderId must not be empty",
    }


# -- get and download -------------------------------------------------------------------------


def test_get_order_fields(api: Api) -> None:
    order_id = api.create(["a.png", "b.png"], orderName="info").json()["data"]["orderId"]
    info = api.order(order_id)
    assert info["orderId"] == order_id and info["orderName"] == "info"
    assert info["type"] == "antiAi" and info["channel"] == "api"
    assert info["status"] == "pending" and info["fileCount"] == 2
    assert info["createdAt"].endswith("Z") and len(info["createdAt"]) == 24
    assert info["errors"] == []


def test_get_unknown_order_is_404(api: Api) -> None:
    api.error(api.http.get("/api/v2/orders/123"), 404, "ORDER_NOT_FOUND")


def test_download_before_complete_is_409(api: Api) -> None:
    order_id = api.create(["a.png"]).json()["data"]["orderId"]
    response = api.http.get(f"/api/v2/orders/{order_id}/download")
    assert "pending" in api.error(response, 409, "INVALID_ORDER_STATUS")


def test_failed_order(api: Api) -> None:
    order_id = api.submit({"good.png": make_image("PNG"), "bad.jpg": b"not an image"})
    info = api.wait_finished(order_id)
    assert info["status"] == "failed"
    assert [e["code"] for e in info["errors"]] == ["INVALID_IMAGE"]
    assert info["errors"][0]["message"].startswith("1/bad.jpg")
    response = api.http.get(f"/api/v2/orders/{order_id}/download")
    assert "failed" in api.error(response, 409, "INVALID_ORDER_STATUS")


def test_empty_upload_fails_that_file(api: Api) -> None:
    info = api.wait_finished(api.submit({"empty.png": b""}))
    assert info["status"] == "failed" and info["errors"][0]["code"] == "INVALID_IMAGE"


def test_unknown_route_uses_the_envelope(api: Api) -> None:
    api.error(api.http.get("/api/v2/nothing"), 404, "NOT_FOUND")
