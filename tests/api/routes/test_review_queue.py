"""The review queue's orders: novelty, diverse, suspect (and the old ones), on the real app and model."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from model.review.queue import QueueOrder, k_center_order
from tests.utils.images import dataset_images, random_image_bytes


def upload(client: TestClient, data: bytes, **form: str) -> dict:
    resp = client.post("/samples", files={"file": ("x.jpg", data, "image/jpeg")}, data=form)
    assert resp.status_code in (200, 201), resp.text
    return resp.json()


def queue(client: TestClient, headers: dict[str, str], order: str, **params: object) -> list[dict]:
    resp = client.get("/admin/samples", params={"order": order, "limit": 200, **params}, headers=headers)
    assert resp.status_code == 200, resp.text
    return resp.json()["data"]


def test_k_center_spreads_a_page_over_look_alikes() -> None:
    rng = np.random.default_rng(0)
    base = rng.random(64)
    look_alikes = base + 0.01 * rng.random((10, 64))  # ten near-identical images, the most uncertain
    distinct = rng.random((5, 64)) * 4 - 2
    order = k_center_order(np.vstack([look_alikes, distinct]), np.r_[np.full(10, 0.5), np.full(5, 0.3)])
    assert order[0] < 10 and sorted(order) == list(range(15))
    assert sum(i >= 10 for i in order[:6]) == 5  # the first page of six: one look-alike, all five distinct ones


def test_every_order_lists_the_same_queue(client: TestClient, reviewer_headers: dict[str, str]) -> None:
    for path in dataset_images("dandelion", 100)[90:93]:
        upload(client, path.read_bytes())
    ids = sorted(s["id"] for s in queue(client, reviewer_headers, "uncertainty"))
    for order in QueueOrder:
        assert sorted(s["id"] for s in queue(client, reviewer_headers, order.value)) == ids, order
    ranked = queue(client, reviewer_headers, "uncertainty")
    unfamiliar = [s["predicted_unfamiliar"] is True for s in ranked]
    assert unfamiliar == sorted(unfamiliar, reverse=True)  # the unfamiliar first, then the least confident
    for group in (True, False):
        confidences = [s["confidence"] for s in ranked if s["confidence"] and unfamiliar[ranked.index(s)] is group]
        assert confidences == sorted(confidences)
    page = client.get("/admin/samples", params={"order": "diverse", "limit": 2, "offset": 1},
                      headers=reviewer_headers).json()
    assert len(page["data"]) == 2 and page["count"] == len(ids)
    assert client.get("/admin/samples", params={"order": "random"}, headers=reviewer_headers).status_code == 422


def test_k_center_picks_a_page_and_leaves_the_rest_by_uncertainty() -> None:
    """The diverse order needs one page of k-center picks; the pool's other rows follow, most uncertain first."""
    rng = np.random.default_rng(1)
    vectors, uncertainty = rng.standard_normal((40, 16)), rng.random(40)
    full = k_center_order(vectors, uncertainty)
    paged = k_center_order(vectors, uncertainty, picks=5)
    assert paged[:5] == full[:5] and sorted(paged) == list(range(40))
    assert paged[5:] == sorted(set(range(40)) - set(full[:5]), key=lambda i: (-uncertainty[i], i))


def test_novelty_puts_an_out_of_domain_image_before_in_domain_photos(
        client: TestClient, reviewer_headers: dict[str, str]) -> None:
    photos = [upload(client, p.read_bytes())["id"] for p in dataset_images("grass", 100)[90:93]]
    texture = upload(client, random_image_bytes("PNG", size=(300, 220), seed=4242))["id"]
    ranked = [s["id"] for s in queue(client, reviewer_headers, "novelty")]
    assert ranked.index(texture) < min(ranked.index(p) for p in photos)


def test_the_default_order_offers_unfamiliar_images_first(client: TestClient, reviewer_headers: dict[str, str]) -> None:
    """A photo of another label set (a glacier, for a dandelion/grass model) is unfamiliar: the default queue shows it
    before familiar photos the model is less sure of."""
    from tests.utils.paths import SCENES

    photos = [upload(client, p.read_bytes())["id"] for p in dataset_images("grass", 100)[93:96]]
    glacier = upload(client, sorted((SCENES / "glacier").glob("*.jpg"))[0].read_bytes())["id"]
    ranked = queue(client, reviewer_headers, "uncertainty")
    ids = [s["id"] for s in ranked]
    assert ranked[ids.index(glacier)]["predicted_unfamiliar"] is True
    assert ranked[0]["predicted_unfamiliar"] is True
    assert not any(ranked[ids.index(p)]["predicted_unfamiliar"] for p in photos)
    assert ids.index(glacier) < min(ids.index(p) for p in photos)
    default = client.get("/admin/samples", params={"limit": 200}, headers=reviewer_headers).json()["data"]
    assert [s["id"] for s in default] == ids


@pytest.mark.parametrize("status", ["pending", "approved"])
def test_suspect_first(client: TestClient, reviewer_headers: dict[str, str], status: str) -> None:
    ranked = queue(client, reviewer_headers, "suspect", status=status)
    if status == "pending":
        doubted = upload(client, dataset_images("dandelion", 100)[95].read_bytes(), label="grass")
        ranked = queue(client, reviewer_headers, "suspect", status=status)
        assert doubted["predicted_label"] == "dandelion"  # the model contradicts the submitter
        contradicted = {s["id"] for s in ranked if s["suggested_label"] not in (None, s["predicted_label"])}
        top = ranked[: len(contradicted)]
        assert {s["id"] for s in top} == contradicted
        assert top == sorted(top, key=lambda s: -s["confidence"]) and doubted["id"] in {s["id"] for s in top}
    assert all(s["status"] == status for s in ranked)


def test_next_cursor_pages_the_queue_and_a_bad_cursor_is_a_422(client: TestClient,
                                                               reviewer_headers: dict[str, str]) -> None:
    for path in dataset_images("grass", 100)[80:85]:
        upload(client, path.read_bytes())
    whole = [s["id"] for s in queue(client, reviewer_headers, "oldest")]
    seen, cursor = [], None
    while True:
        resp = client.get("/admin/samples", params={"order": "oldest", "limit": 2, **({"cursor": cursor} if cursor
                                                                                   else {})}, headers=reviewer_headers)
        assert resp.status_code == 200, resp.text
        assert (resp.json()["count"] is None) == (cursor is not None)  # the first page counts, cursor pages do not
        seen += [s["id"] for s in resp.json()["data"]]
        if (cursor := resp.json()["next_cursor"]) is None:
            break
    assert seen == whole
    first = client.get("/admin/samples", params={"order": "oldest", "limit": 2}, headers=reviewer_headers).json()
    for params in ({"order": "newest", "cursor": first["next_cursor"]}, {"order": "oldest", "cursor": "not one"},
                   {"order": "oldest", "cursor": first["next_cursor"], "offset": 2}):
        resp = client.get("/admin/samples", params=params, headers=reviewer_headers)
        assert resp.status_code == 422 and "cursor" in resp.json()["detail"], resp.text
