"""The OCI archives the real node imports (tests/controlplane/oci.py): a valid image
layout, byte-for-byte reproducible, naming its image the way containerd reads it."""

from __future__ import annotations

import hashlib
import json
import tarfile

from tests.controlplane import oci


def _build(tmp_path, name="x.oci.tar"):
    binary = tmp_path / "prog"
    binary.write_bytes(b"\x7fELF pretend")
    return oci.write_image(tmp_path / name, "tandem.dev/probe:1", {"/prog": binary}, ["/prog"])


def test_archive_is_a_valid_layout_whose_blobs_match_their_digests(tmp_path):
    digest = _build(tmp_path)
    with tarfile.open(tmp_path / "x.oci.tar") as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    for name, data in files.items():
        if name.startswith("blobs/sha256/"):
            assert hashlib.sha256(data).hexdigest() == name.rsplit("/", 1)[1]
    index = json.loads(files["index.json"])
    assert index["manifests"][0]["digest"] == digest
    manifest = json.loads(files["blobs/sha256/" + digest.split(":")[1]])
    config = json.loads(files["blobs/sha256/" + manifest["config"]["digest"].split(":")[1]])
    assert config["config"]["Entrypoint"] == ["/prog"]
    layer = files["blobs/sha256/" + manifest["layers"][0]["digest"].split(":")[1]]
    assert config["rootfs"]["diff_ids"] == [manifest["layers"][0]["digest"]]  # uncompressed layer
    with tarfile.open(fileobj=__import__("io").BytesIO(layer)) as tar:
        member = tar.getmember("prog")
        assert member.mode == 0o755 and tar.extractfile(member).read() == b"\x7fELF pretend"


def test_same_inputs_same_bytes(tmp_path):
    assert _build(tmp_path, "a.tar") == _build(tmp_path, "b.tar")
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()


def test_archive_images_reads_the_name_containerd_uses(tmp_path):
    digest = _build(tmp_path)
    assert oci.archive_images(tmp_path / "x.oci.tar") == {"tandem.dev/probe:1": digest}


def test_archive_images_reads_a_layout_directory_too(tmp_path):
    """What tests/e2e/images.py builds: the same files as the archive, unpacked."""
    digest = _build(tmp_path)
    with tarfile.open(tmp_path / "x.oci.tar") as tar:
        tar.extractall(tmp_path / "layout", filter="data")
    assert oci.archive_images(tmp_path / "layout") == {"tandem.dev/probe:1": digest}
