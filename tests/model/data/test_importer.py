"""Import sources: an S3 prefix becomes a folder-per-label tree, and no key writes outside it."""

from __future__ import annotations

import contextlib
import io
import uuid
from pathlib import Path

import pytest
from PIL import Image

from model.core.settings import Settings
from model.data.importer import S3Prefix, _relative_parts, download_prefix
from tests import servers


@pytest.mark.parametrize(("key", "prefix"), [
    ("/grass/abs.jpg", ""), ("/etc/cron.d/x.jpg", ""), ("grass/../../escape.jpg", ""), ("../grass/x.jpg", ""),
    ("data/grass/../../../x.jpg", "data"), ("data//etc/x.jpg", "data"), ("grass\\..\\x.jpg", ""),
    ("grass/./x.jpg", ""), ("top.jpg", ""), ("data/top.jpg", "data"), ("other/grass/x.jpg", "data"),
])
def test_keys_that_could_escape_or_are_no_label_files_are_refused(key: str, prefix: str) -> None:
    assert _relative_parts(key, prefix) is None


def test_label_files_map_below_the_destination() -> None:
    assert _relative_parts("grass/a.jpg", "") == ("grass", "a.jpg")
    assert _relative_parts("data/set/grass/sub/a.jpg", "data/set") == ("grass", "sub", "a.jpg")


def jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (20, 20), (1, 150, 1)).save(buf, format="JPEG")
    return buf.getvalue()


def test_a_hostile_bucket_writes_nothing_outside_the_destination(s3_server: servers.S3Server, tmp_path: Path) -> None:
    import boto3

    client = boto3.client("s3", endpoint_url=f"http://{s3_server.endpoint}", aws_access_key_id=s3_server.access_key,
                          aws_secret_access_key=s3_server.secret_key, region_name="us-east-1")
    bucket = f"hostile-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    from botocore.exceptions import ClientError

    client.put_object(Bucket=bucket, Key="grass/ok.jpg", Body=jpeg())
    for key in ("/grass/abs.jpg", "//grass/abs2.jpg", "grass/../../../escape.jpg"):
        with contextlib.suppress(ClientError):  # SeaweedFS refuses some of these itself; others take any key
            client.put_object(Bucket=bucket, Key=key, Body=jpeg())
    settings = Settings(_env_file=None, home=tmp_path / "home", s3_endpoint=s3_server.endpoint,  # type: ignore[call-arg]
                        s3_access_key=s3_server.access_key, s3_secret_key=s3_server.secret_key)
    dest = tmp_path / "deep" / "dest"
    dest.mkdir(parents=True)
    download_prefix(S3Prefix.parse(f"s3://{bucket}"), dest, settings)
    written = [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.jpg")]
    assert "deep/dest/grass/ok.jpg" in written  # (SeaweedFS normalises '/grass/x' to 'grass/x': harmless)
    assert all(w.startswith("deep/dest/grass/") for w in written), written
