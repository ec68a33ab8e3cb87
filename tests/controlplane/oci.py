"""Single-layer OCI image archives from a few files, without a container engine.

The real node needs two images that no registry can give it here: the pod sandbox
(``tandem-pause``) and the smoke test's ``tandem-probe``, each one static binary. An OCI image
layout in a tar (``oci-layout``, ``index.json``, ``blobs/sha256/...``) is what
``ctr images import`` reads, and it takes twenty lines to write; the Tandem images proper
(with a root filesystem) are built with buildah elsewhere.

The archive is byte-for-byte reproducible (fixed mtimes, owners and order), so its digest
depends only on its inputs and an import of an unchanged image is recognised as such.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar"


def _tar(entries: dict[str, tuple[bytes, int]]) -> bytes:
    """A deterministic tar of {path: (content, mode)}."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(entries):
            data, mode = entries[name]
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 0
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _blob(data: bytes) -> tuple[str, bytes]:
    return "sha256:" + hashlib.sha256(data).hexdigest(), data


def write_image(path: Path, name: str, files: dict[str, Path], entrypoint: list[str],
                user: str = "65535:65535") -> str:
    """Write an OCI archive holding one image `name` (e.g. ``tandem.dev/pause:1``) whose only
    layer holds `files` ({path in image: file on disk}, made executable). Returns the
    manifest digest, which is what containerd records as the image's target."""
    layer = _tar({dest.lstrip("/"): (src.read_bytes(), 0o755) for dest, src in files.items()})
    layer_digest, _ = _blob(layer)
    config = json.dumps({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": entrypoint, "User": user, "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    }, sort_keys=True).encode()
    config_digest, _ = _blob(config)
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": {"mediaType": MEDIA_CONFIG, "digest": config_digest, "size": len(config)},
        "layers": [{"mediaType": MEDIA_LAYER, "digest": layer_digest, "size": len(layer)}],
    }, sort_keys=True).encode()
    manifest_digest, _ = _blob(manifest)
    index = json.dumps({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": MEDIA_MANIFEST, "digest": manifest_digest, "size": len(manifest),
            "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": {"io.containerd.image.name": name,
                            "org.opencontainers.image.ref.name": name.rsplit(":", 1)[-1]},
        }],
    }, sort_keys=True).encode()
    entries = {"oci-layout": (b'{"imageLayoutVersion":"1.0.0"}', 0o644), "index.json": (index, 0o644)}
    for data in (layer, config, manifest):
        digest, _ = _blob(data)
        entries["blobs/sha256/" + digest.split(":", 1)[1]] = (data, 0o644)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(_tar(entries))
    tmp.replace(path)
    return manifest_digest


def archive_images(path: Path) -> dict[str, str]:
    """{image name: manifest digest} of the images an OCI archive or layout directory names
    (index.json annotations), so that a caller can tell whether containerd already holds them."""
    if path.is_dir():
        if not (path / "index.json").is_file():
            raise ValueError(f"{path}: no index.json: not an OCI layout")
        index = json.loads((path / "index.json").read_text())
    else:
        with tarfile.open(path) as tar:
            member = tar.extractfile("index.json")
            if member is None:
                raise ValueError(f"{path}: no index.json: not an OCI archive")
            index = json.load(member)
    out = {}
    for m in index.get("manifests", []):
        annotations = m.get("annotations") or {}
        # containerd's own annotation first; buildah writes only the OCI ref name.
        name = annotations.get("io.containerd.image.name") or annotations.get(
            "org.opencontainers.image.ref.name")
        if name:
            out[name] = m["digest"]
    return out
