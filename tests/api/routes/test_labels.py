"""/admin/labels on a home of six scene classes (no model needed): reviewers read, admins rename, merge and retire;
refusals are clear 4xx and change nothing; every change is audited and says how the retrain follows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from db import queries
from db.models import LabelChange, Review, ReviewAction, SampleSource, SampleStatus
from model.core.accounts import create_user
from model.core.settings import Settings
from model.data.importer import import_directory
from model.data.samples import add_sample
from model.runtime.services import Services
from tests.api.conftest import ADMIN, ADMIN_PASSWORD, PASSWORD, REVIEWER, make_client
from tests.servers import free_port
from tests.utils.datasets import scenes_tree
from tests.utils.images import random_image_bytes
from tests.utils.services import migrated_services

SCENES = {"buildings": 3, "forest": 3, "glacier": 3, "mountain": 3, "sea": 3, "street": 2}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    svc = migrated_services(Settings(home=home))
    with svc.session() as session:
        import_directory(session, svc.store, scenes_tree(tmp_path / "scenes", SCENES))
        create_user(session, username=REVIEWER, password=PASSWORD)
        create_user(session, username=ADMIN, password=ADMIN_PASSWORD, is_admin=True)
    svc.close()
    return home


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch, home: Path) -> Iterator[TestClient]:
    with make_client(monkeypatch, home) as c:
        yield c


@pytest.fixture
def svc(home: Path) -> Iterator[Services]:
    services = Services.from_settings(Settings(_env_file=None, home=home))  # type: ignore[call-arg]
    yield services
    services.close()


def headers(client: TestClient, username: str, password: str) -> dict[str, str]:
    token = client.post("/auth/token", data={"username": username, "password": password}).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def test_reviewers_read_the_labels_only_admins_change_them(client: TestClient) -> None:
    assert client.get("/admin/labels").status_code == 401
    reviewer = headers(client, REVIEWER, PASSWORD)
    listed = client.get("/admin/labels", headers=reviewer)
    assert listed.status_code == 200
    assert {row["label"]: row["approved"] for row in listed.json()["labels"]} == SCENES
    assert listed.json()["changes"] == []
    for path, body in (("sea/rename", {"to": "ocean"}), ("sea/merge", {"into": "glacier"}), ("sea/retire", None)):
        refused = client.post(f"/admin/labels/{path}", json=body, headers=reviewer)
        assert refused.status_code == 403 and refused.json() == {"detail": "Only an admin can do this."}
        assert client.post(f"/admin/labels/{path}", json=body).status_code == 401
    assert client.get("/admin/labels", headers=reviewer).json()["changes"] == []


def test_refusals_are_clear_and_change_nothing(client: TestClient, svc: Services) -> None:
    admin = headers(client, ADMIN, ADMIN_PASSWORD)
    cases = [
        ("snow/rename", {"to": "ice"}, 404, "No approved sample has the label 'snow'"),
        ("sea/rename", {"to": "forest"}, 409, "exists already: merge"),
        ("sea/rename", {"to": "sea"}, 422, "already has that name"),
        ("sea/rename", {"to": "no way"}, 422, "Invalid label"),
        ("sea/rename", {}, 422, "Field required"),
        ("sea/merge", {"into": "sea"}, 422, "Cannot merge 'sea' into itself"),
        ("sea/merge", {"into": "lake"}, 404, "rename 'sea' to it instead"),
        ("lake/retire", None, 404, "No approved sample has the label 'lake'"),
        ("-sea/retire", None, 422, "Invalid label"),
    ]
    for path, body, status, detail in cases:
        resp = client.post(f"/admin/labels/{path}", json=body, headers=admin)
        assert resp.status_code == status, (path, resp.text)
        assert detail in str(resp.json()["detail"]), (path, resp.text)
    with svc.session() as session:
        assert session.query(LabelChange).count() == 0 and session.query(Review).count() == 0


def test_rename_merge_and_retire_are_audited_and_report_the_retrain(client: TestClient, svc: Services) -> None:
    admin, reviewer = headers(client, ADMIN, ADMIN_PASSWORD), headers(client, REVIEWER, PASSWORD)
    with svc.session() as session:
        waiting, _ = add_sample(session, svc.store, data=random_image_bytes(seed=3), source=SampleSource.UPLOAD,
                                suggested_label="street")

    renamed = client.post("/admin/labels/sea/rename", json={"to": "ocean"}, headers=admin)
    assert renamed.status_code == 200, renamed.text
    body = renamed.json()
    assert (body["kind"], body["label"], body["into"], body["changed_by"], body["approved"]) == (
        "rename", "sea", "ocean", ADMIN, SCENES["sea"])
    assert body["retrain"]["triggered"] is False and "Airflow is not configured" in body["retrain"]["detail"]

    merged = client.post("/admin/labels/glacier/merge", json={"into": "mountain"}, headers=admin)
    assert merged.status_code == 200 and merged.json()["approved"] == SCENES["glacier"]
    retired = client.post("/admin/labels/street/retire", headers=admin)
    assert retired.status_code == 200 and retired.json()["into"] is None

    listed = client.get("/admin/labels", headers=reviewer).json()
    assert {row["label"]: row["approved"] for row in listed["labels"]} == {
        "buildings": 3, "forest": 3, "mountain": 6, "ocean": 3}
    assert [(c["kind"], c["label"], c["into"]) for c in listed["changes"]] == [
        ("retire", "street", None), ("merge", "glacier", "mountain"), ("rename", "sea", "ocean")]
    with svc.session() as session:
        audit = [(r.action, r.old_label, r.new_label, r.reviewer) for r in session.query(Review).order_by(Review.id)]
        assert audit == ([(ReviewAction.RENAME, "sea", "ocean", ADMIN)] * 3 + [(ReviewAction.MERGE, "glacier",
                         "mountain", ADMIN)] * 3 + [(ReviewAction.RETIRE, "street", None, ADMIN)] * 2)
        assert queries.count_samples(session, status=SampleStatus.REJECTED) == 2
    # the retired label is refused in a review, the renamed one's old name is filed under the new name
    refused = client.post(f"/admin/samples/{waiting.id}/review", json={"action": "approve", "label": "street"},
                          headers=reviewer)
    assert refused.status_code == 422 and "'street' was retired by admin" in refused.json()["detail"]
    approved = client.post(f"/admin/samples/{waiting.id}/review", json={"action": "approve", "label": "sea"},
                           headers=reviewer)
    assert approved.status_code == 200 and approved.json()["label"] == "ocean"


def test_an_unreachable_airflow_does_not_undo_the_change(monkeypatch: pytest.MonkeyPatch, home: Path,
                                                         svc: Services) -> None:
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with make_client(monkeypatch, home, airflow_url=closed, airflow_username="sprout",
                     airflow_password="x" * 12) as client:
        resp = client.post("/admin/labels/sea/rename", json={"to": "ocean"},
                           headers=headers(client, ADMIN, ADMIN_PASSWORD))
    assert resp.status_code == 200, resp.text
    retrain = resp.json()["retrain"]
    assert retrain["triggered"] is False and "unreachable" in retrain["detail"] and "due" in retrain["detail"]
    with svc.session() as session:
        assert {s.label for s in queries.approved_samples(session)} >= {"ocean"}
