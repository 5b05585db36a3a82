"""Near-duplicates at intake, on the real app and model: copies are linked and share their group's split."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

from api.state import app_state
from db import queries
from model.core.settings import Settings
from model.learning.embeddings import load_cached
from model.runtime.services import Services
from tests.utils.images import dataset_images, near_copy


def upload(client: TestClient, data: bytes, headers: dict[str, str] | None = None, **form: str):
    return client.post("/samples", files={"file": ("copy.jpg", data, "image/jpeg")}, data=form, headers=headers)


def approved(client: TestClient, headers: dict[str, str]) -> dict[str, dict]:
    rows = client.get("/admin/samples", params={"status": "approved", "limit": 200}, headers=headers).json()["data"]
    return {r["sha256"]: r for r in rows}


def test_a_copy_of_an_approved_image_is_linked_and_a_different_photo_is_not(
        client: TestClient, reviewer_headers: dict[str, str]) -> None:
    known = approved(client, reviewer_headers)
    originals = [p for p in dataset_images("dandelion", 40) if hashlib.sha256(p.read_bytes()).hexdigest() in known]
    original = known[hashlib.sha256(originals[5].read_bytes()).hexdigest()]
    copy = near_copy(originals[5].read_bytes(), crop=0.10, scale=0.8, quality=75)
    resp = upload(client, copy, reviewer_headers)
    assert resp.status_code == 201, resp.text
    links = resp.json()["near_duplicates"]
    assert links and links[0]["id"] == original["id"], links
    assert all(0.70 <= link["similarity"] <= 1 for link in links)
    svc = app_state(client.app).services
    with svc.session() as session:  # the prediction's embedding is cached: training will not embed it again
        run = queries.last_succeeded_run(session)
        assert run is not None and load_cached(session, run.backbone, [hashlib.sha256(copy).hexdigest()])
    assert [link["similarity"] for link in links] == sorted((link["similarity"] for link in links), reverse=True)

    queue = client.get("/admin/samples", params={"limit": 200}, headers=reviewer_headers).json()["data"]
    card = next(s for s in queue if s["id"] == resp.json()["id"])
    assert card["near_duplicates"][0] == {**links[0], "label": "dandelion", "status": "approved"}
    assert card["duplicate_group"] == original["id"] and card["split"] == original["split"]

    for path in dataset_images("grass", 100)[80:86]:  # photos the model never saw, none a copy of another
        fresh = upload(client, path.read_bytes(), reviewer_headers)
        assert fresh.status_code == 201 and fresh.json()["near_duplicates"] == [], fresh.json()


def test_a_copy_of_a_test_image_lands_in_the_test_split(client: TestClient, reviewer_headers: dict[str, str]) -> None:
    known = approved(client, reviewer_headers)
    by_sha = {hashlib.sha256(p.read_bytes()).hexdigest(): p for label in ("dandelion", "grass")
              for p in dataset_images(label, 40)}
    tests = [(known[sha], path) for sha, path in by_sha.items() if sha in known and known[sha]["split"] == "test"]
    assert tests, "the small set has test images"
    original, path = tests[0]
    resp = upload(client, near_copy(path.read_bytes(), crop=0.10, scale=1.5, quality=75), reviewer_headers)
    assert resp.status_code == 201 and resp.json()["near_duplicates"][0]["id"] == original["id"], resp.json()
    queue = client.get("/admin/samples", params={"limit": 200}, headers=reviewer_headers).json()["data"]
    assert next(s for s in queue if s["id"] == resp.json()["id"])["split"] == "test"


def test_an_anonymous_receipt_names_no_existing_sample_and_the_queue_flags_a_contradicted_suggestion(
        client: TestClient, reviewer_headers: dict[str, str]) -> None:
    """Near-duplicates reveal training-set membership: only a reviewer's receipt lists them. A suggestion that
    contradicts the approved label of the sample's near-duplicate group is flagged on its queue item."""
    known = approved(client, reviewer_headers)
    path = next(p for p in dataset_images("grass", 40)[10:] if hashlib.sha256(p.read_bytes()).hexdigest() in known)
    original = known[hashlib.sha256(path.read_bytes()).hexdigest()]
    exact = upload(client, path.read_bytes())  # an exact copy of an approved (training) image
    assert exact.status_code == 200, exact.text
    assert {k: v for k, v in exact.json().items() if v not in (None, [])} == {"duplicate": True}, exact.json()
    for_reviewer = upload(client, path.read_bytes(), reviewer_headers).json()
    assert (for_reviewer["id"], for_reviewer["status"], for_reviewer["duplicate"]) == (original["id"], "approved", True)
    anonymous = upload(client, near_copy(path.read_bytes(), crop=0.10, scale=0.85, quality=72), label="dandelion")
    assert anonymous.status_code == 201 and anonymous.json()["near_duplicates"] == [], anonymous.json()
    agreeing = upload(client, near_copy(path.read_bytes(), crop=0.08, scale=0.75, quality=78), label="grass")
    assert agreeing.status_code == 201 and agreeing.json()["near_duplicates"] == [], agreeing.json()
    reviewer_copy = near_copy(path.read_bytes(), crop=0.10, scale=1.3, quality=80)
    assert upload(client, reviewer_copy, {"Authorization": "Bearer forged"}).status_code == 401  # never anonymous
    reviewer = upload(client, reviewer_copy, reviewer_headers)
    assert reviewer.status_code == 201 and reviewer.json()["near_duplicates"][0]["id"] == original["id"]

    queue = client.get("/admin/samples", params={"limit": 200}, headers=reviewer_headers).json()["data"]
    cards = {s["id"]: s for s in queue}
    flagged = cards[anonymous.json()["id"]]
    assert flagged["near_duplicates"][0]["id"] == original["id"]  # the reviewer still sees the link
    assert flagged["suggestion_conflict"] == "grass", flagged
    assert cards[agreeing.json()["id"]]["suggestion_conflict"] is None
    assert cards[reviewer.json()["id"]]["suggestion_conflict"] is None  # no suggestion, nothing to contradict
    assert "suggestion_conflict" not in anonymous.json()


def test_the_served_embedding_is_the_one_training_caches(trained_home: Path) -> None:
    """The served graph's second output is the backbone embedding: equal to the training cache's (torch)."""
    svc = Services.from_settings(Settings(_env_file=None, home=trained_home))  # type: ignore[call-arg]
    try:
        path = dataset_images("grass", 40)[3]
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        with svc.session() as session:
            run = queries.last_succeeded_run(session)
            assert run is not None
            cached = load_cached(session, run.backbone, [sha])[sha]
        predictor = svc.registry.load_predictor(run.registered_version)
        result = predictor.predict_bytes(path.read_bytes())
        assert predictor.embeds and predictor.backbone == run.backbone
        assert result.embedding is not None and result.embedding.shape == cached.shape
        cosine = float(result.embedding @ cached / np.linalg.norm(result.embedding) / np.linalg.norm(cached))
        assert cosine > 0.9999 and np.allclose(result.embedding, cached, atol=1e-3)
    finally:
        svc.close()
