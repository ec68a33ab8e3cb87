"""Tandem's three images, built from images/*.Dockerfile without a Docker daemon, cached by their inputs.

CI machines have no Docker engine and cannot reach a container registry, so the public base
(python:3.11-slim-bookworm) cannot be pulled. Instead:

1. A Debian bookworm base is made here with debootstrap (Debian's own packages, python3 3.11,
   the same Python as the default base) and committed into buildah's store.
2. buildah (Debian's package) builds each real Dockerfile on it, `--build-arg PYTHON_IMAGE=<base>`.
3. Each image leaves as an OCI image layout (a directory), ~/.cache/tandem/images/<name>-<key>.oci,
   that containerd imports as a tar stream (`tar -C DIR -c oci-layout index.json blobs | ctr -n
   k8s.io images import --all-platforms -`; RealNode.load_image does this).
   The key hashes every input (the Dockerfile, its .dockerignore, the context files that pass it,
   the base's recipe, the builder's version, the build arguments), so a second run finds the
   layout and builds nothing.

Disk is what a build runs out of: the PyTorch image is 6 GiB and a build holds it three times at
its peak (the build container, buildah's copy of the layer, the layout). A directory rather than an
OCI archive saves a fourth copy (an archive is written from a temporary layout), and the node's
containerd imports it as a tar stream, with no extraction. buildah's temporary files live under the cache and are
wiped at each build, so a killed build leaves nothing behind in /var/tmp; a build that would not
fit is refused at once, in one line that says what is needed and what is free.

Run it as `bash hack/build-images.sh [NAME...]` (it installs buildah and debootstrap when missing);
it prints one layout path per line on stdout and its progress on stderr. Tests call
`build_images()`. Stdlib only (and the e2e node's module, for the paths of the store it empties
below, and tandem.frameworks for the worker images; hack/build-images.sh puts operator/ on the
path for these stdlib helpers): it runs before, and apart from, Tandem's Python environment.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tandem.frameworks import frameworks

REPO = Path(__file__).resolve().parents[2]
#: The operator's image and each framework's worker image (the registry lists them).
IMAGES = ("operator", *(framework.image for framework in frameworks()))
CACHE = Path(os.environ.get("TANDEM_IMAGE_CACHE", Path.home() / ".cache" / "tandem" / "images"))

#: Everything the base image is made from; its hash names the base, and so enters every image's key.
#: The venv on PATH stands in for the official image's own /usr/local Python: Debian marks its
#: python3 externally managed (PEP 668), and a venv lets the Dockerfiles' plain `pip install`
#: work without touching Debian's packages (removing the EXTERNALLY-MANAGED marker would let pip
#: overwrite files dpkg owns). `python`, `pip` and the installed entry points resolve in the venv.
BASE_RECIPE: dict[str, Any] = {
    "suite": "bookworm",
    "variant": "minbase",
    "mirror": "http://deb.debian.org/debian",
    # python3-venv brings ensurepip's pip; passwd brings groupadd/useradd for the Dockerfiles'
    # first RUN; ca-certificates for TLS from inside the image (the official base has it too).
    "packages": ["python3", "python3-venv", "passwd", "ca-certificates"],
    "venv": "/opt/venv",
    "env": {
        "PATH": "/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "VIRTUAL_ENV": "/opt/venv",
        "LANG": "C.UTF-8",
    },
    # Docs, manuals and apt's downloaded lists are of no use in a test image (copyright files stay).
    "strip": ["var/lib/apt/lists", "var/cache/apt", "usr/share/man", "usr/share/info"],
}
#: Where Debian's ca-certificates keeps the bundle that OpenSSL (and so pip, when told) reads.
IMAGE_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
#: How an image leaves the builder; part of every key, so that archives made another way are not reused.
EXPORT = "OCI layout directory, built directly, uncompressed layers"
#: Each image's size as built here (GiB, uncompressed: docs/e2e.md's table), for the room a build
#: needs. PyPI's Linux torch carries its CUDA libraries: about 4 GiB of the PyTorch image.
IMAGE_GIB = {"operator": 0.8, "pytorch-worker": 6.0, "tensorflow-worker": 2.2}


def image_gib(name: str) -> float:
    """An image's size; one not measured yet (a new framework's) is taken as the largest."""
    return IMAGE_GIB.get(name, max(IMAGE_GIB.values()))


#: How many copies of the image a build holds at its peak: the build container's files, the layer
#: buildah writes out to hash it, and the layout it is copied into.
BUILD_COPIES = 3
#: buildah's (and containers/image's) temporary files, under the cache rather than /var/tmp:
#: wiped when a build starts, so a killed build's multi-GB leftovers go at the next one.
BUILD_TMP = CACHE / "tmp"
#: Storage driver for buildah's private store. overlay shares the base between containers instead
#: of copying it in full (vfs), which matters with multi-GB layers; TANDEM_BUILDAH_DRIVER=vfs
#: is the fallback where overlayfs cannot mount.
DRIVER = os.environ.get("TANDEM_BUILDAH_DRIVER", "overlay")


def say(message: str) -> None:
    print(f"build-images: {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ pure logic: what goes in


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as a regex over slash-separated relative paths (Go's filepath.Match
    plus `**`, as Docker reads it): `*` stays within one path segment, `**/` spans any number."""
    pattern = pattern.strip("/")
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


def parse_ignore(text: str) -> list[tuple[bool, re.Pattern[str]]]:
    """(excludes, regex) rules in file order; blank lines and comments dropped."""
    rules = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        include = line.startswith("!")
        rules.append((not include, _pattern_regex(line.lstrip("!"))))
    return rules


def is_ignored(relpath: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last pattern that matches the path, or any directory above it, decides."""
    parts = relpath.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for excludes, regex in rules:
        if any(regex.match(p) for p in prefixes):
            ignored = excludes
    return ignored


def context_files(repo: Path, ignore_text: str) -> list[str]:
    """The build context's files that the .dockerignore lets through, sorted, relative to repo."""
    rules = parse_ignore(ignore_text)
    kept = []
    for root, dirs, files in os.walk(repo):
        rel_root = os.path.relpath(root, repo)
        dirs[:] = sorted(d for d in dirs if d != ".git")
        for name in files:
            rel = name if rel_root == "." else f"{rel_root}/{name}"
            if not is_ignored(rel, rules):
                kept.append(rel)
    return sorted(kept)


def app_version(repo: Path) -> str:
    """The chart's appVersion: the tag the example jobs and the chart name the images by."""
    text = (repo / "charts" / "tandem" / "Chart.yaml").read_text()
    match = re.search(r'^appVersion:\s*"?([^"\s]+)"?\s*$', text, re.M)
    if match is None:
        raise ValueError("charts/tandem/Chart.yaml has no appVersion")
    return match.group(1)


def base_key(debootstrap_version: str) -> str:
    blob = json.dumps({"recipe": BASE_RECIPE, "debootstrap": debootstrap_version}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def base_ref(key: str) -> str:
    """The base's name in buildah's store; the Dockerfiles are built FROM it."""
    return f"localhost/tandem/base:bookworm-{key}"


def image_key(repo: Path, name: str, base: str, builder: str, build_args: dict[str, str]) -> str:
    """Hash of every input of one image: change any and the archive's name changes."""
    dockerfile = repo / "images" / f"{name}.Dockerfile"
    ignore = dockerfile.with_name(dockerfile.name + ".dockerignore")
    digest = hashlib.sha256()
    for label, data in (("dockerfile", dockerfile.read_bytes()), ("ignore", ignore.read_bytes()),
                        ("base", base.encode()), ("builder", builder.encode()), ("driver", DRIVER.encode()),
                        ("export", EXPORT.encode()),
                        ("args", json.dumps(build_args, sort_keys=True).encode())):
        digest.update(f"{label}\0{len(data)}\0".encode() + data)
    for rel in context_files(repo, ignore.read_text()):
        path = repo / rel
        digest.update(f"file\0{rel}\0{os.access(path, os.X_OK)}\0".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def archive_ref(name: str, version: str) -> str:
    """The name inside the archive. Fully qualified, because the CRI looks an image named
    `tandem/operator:0.1.0` up as `docker.io/tandem/operator:0.1.0` (and that is what
    `ctr images import` keeps from an OCI layout's ref-name annotation)."""
    return f"docker.io/tandem/{name}:{version}"


# ------------------------------------------------------------------ I/O: building


def _run(*cmd: str, capture: bool = False, **kw) -> str:
    """Runs cmd; its output is progress (stderr), unless captured: stdout is for archive paths."""
    kw.setdefault("stdout", subprocess.PIPE if capture else sys.stderr)
    out = subprocess.run(cmd, check=True, text=True, **kw)
    return out.stdout.strip() if capture else ""


def _store_args() -> list[str]:
    """buildah's private store under the cache, never the machine's shared one."""
    return ["--root", str(CACHE / "buildah" / DRIVER),
            "--runroot", str(Path(tempfile.gettempdir()) / "tandem-buildah-run"), "--storage-driver", DRIVER]


def _buildah_env() -> dict[str, str]:
    """RUN steps in chroot isolation: no runc and no network namespace (pip reaches PyPI through
    the host's network), which is what works on a CI machine that is itself a container."""
    BUILD_TMP.mkdir(parents=True, exist_ok=True)
    return {**os.environ, "BUILDAH_ISOLATION": "chroot", "TMPDIR": str(BUILD_TMP)}


#: What buildah's re-exec prints when the kernel refuses, for a moment, to seal its memfd copy of
#: itself (runc's cloned_binary code, vendored; EBUSY while pages of the copy are still pinned,
#: which a loaded 2-core machine hits now and then). Nothing ran yet, so running again is safe.
MEMFD_BUSY = "sealing memfd copy: Device or resource busy"
MEMFD_TRIES = 3


def _buildah(*args: str, capture: bool = False, **kw) -> str:
    """buildah with the private store; runs again, up to MEMFD_TRIES times, when its re-exec
    hit MEMFD_BUSY (its stderr is read to see that, then passed on)."""
    kw.setdefault("stderr", subprocess.PIPE)
    for attempt in range(1, MEMFD_TRIES + 1):
        try:
            return _run("buildah", *_store_args(), *args, capture=capture, env=_buildah_env(), **kw)
        except subprocess.CalledProcessError as failed:
            sys.stderr.write(failed.stderr or "")
            if MEMFD_BUSY not in (failed.stderr or "") or attempt == MEMFD_TRIES:
                raise
            say(f"buildah {args[0]}: {MEMFD_BUSY} (a transient kernel refusal); running it again")
    raise AssertionError("unreachable")


def _has_image(ref: str) -> bool:
    try:
        _buildah("inspect", "--type", "image", "--format", "{{.FromImageID}}", ref, capture=True,
                 stderr=subprocess.DEVNULL)
    except subprocess.CalledProcessError:
        return False
    return True


def ensure_base(debootstrap_version: str) -> tuple[str, str]:
    """The bookworm base in buildah's store, made once per recipe: (its ref, its key)."""
    key = base_key(debootstrap_version)
    ref = base_ref(key)
    if _has_image(ref):
        return ref, key
    started = time.monotonic()
    say(f"base {ref}: debootstrap {BASE_RECIPE['suite']} ({', '.join(BASE_RECIPE['packages'])})")
    container = _buildah("from", "--pull-never", "scratch", capture=True)
    try:
        root = Path(_buildah("mount", container, capture=True))
        _run("debootstrap", f"--variant={BASE_RECIPE['variant']}", "--include=" + ",".join(BASE_RECIPE["packages"]),
             BASE_RECIPE["suite"], str(root), BASE_RECIPE["mirror"])
        for rel in BASE_RECIPE["strip"]:
            shutil.rmtree(root / rel, ignore_errors=True)
        _run("find", str(root / "usr/share/doc"), "-type", "f", "!", "-name", "copyright", "-delete")
        _buildah("run", container, "--", "python3", "-m", "venv", BASE_RECIPE["venv"])
        config = [arg for k, v in BASE_RECIPE["env"].items() for arg in ("--env", f"{k}={v}")]
        _buildah("config", *config, "--cmd", "python", container)
        _buildah("commit", "--quiet", "--rm", container, ref)
    except BaseException:
        _buildah("rm", container)
        raise
    say(f"base {ref}: made in {time.monotonic() - started:.0f}s")
    return ref, key


def _trust_mounts() -> list[str]:
    """Build-time only mounts (nothing stays in the image) so that pip inside the build trusts
    what the host's pip trusts: the host's CA bundle over the image's, and an /etc/pip.conf that
    points pip at it (pip reads its own certifi bundle otherwise). Without it a network that
    re-signs TLS (a proxy with its own CA, as on these CI machines) fails every download."""
    bundle = Path(os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt")
    if not bundle.is_file():
        return []
    pip_conf = CACHE / "pip.conf"
    pip_conf.write_text(f"[global]\ncert = {IMAGE_CA_BUNDLE}\n")
    return ["-v", f"{bundle.resolve()}:{IMAGE_CA_BUNDLE}:ro", "-v", f"{pip_conf}:/etc/pip.conf:ro"]


class NoRoom(Exception):
    """Too little free disk for a build: said before the build starts, not 5 minutes into it."""


def check_room(name: str) -> None:
    """Refuses a build that cannot fit on the cache's filesystem (the store, the temporary files
    and the layout all live there), naming what it needs, what is free and how to free more."""
    from tests.controlplane.node import CONTAINERD_ROOT

    need = BUILD_COPIES * image_gib(name) + 1.0
    free = shutil.disk_usage(CACHE).free / 2**30
    if free < need:
        raise NoRoom(f"{name} needs about {need:.0f} GiB free on the disk of {CACHE} while it builds "
                     f"({BUILD_COPIES} copies of a {image_gib(name):g} GiB image) but {free:.1f} GiB is "
                     f"free: free some (the e2e node's imported images go with `rm -rf {CONTAINERD_ROOT}` "
                     "while no node runs) or set TANDEM_IMAGE_CACHE to a larger disk")


def _remove(path: Path) -> None:
    """A layout (a directory) or an archive (a file), whichever it is."""
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def remove_stale_layouts(name: str) -> None:
    """Deletes this image's layouts of other keys (and archives, as earlier versions made them):
    each source change makes a new one of up to 6 GB, and a machine that runs the suite after
    every change would otherwise fill its disk."""
    for stale in CACHE.glob(f"{name}-*"):
        if re.fullmatch(rf"{re.escape(name)}-[0-9a-f]+\.(tar|oci)", stale.name):
            say(f"{name}: removing the stale {stale.name}")
            _remove(stale)


def remove_build_leftovers() -> None:
    """What a killed build leaves: its temporary files (the layer copy alone is 6 GB for the
    PyTorch image), its half-written output (`.<name>-<key>.oci.partial`, or `.tar.partial` from
    earlier versions) and its working container in the private store, which holds the half-built
    image's files. Called under the build lock, so none of it is a running build's. Only build
    containers go (those FROM the base)."""
    shutil.rmtree(BUILD_TMP, ignore_errors=True)
    BUILD_TMP.mkdir(parents=True)
    for partial in CACHE.glob(".*.partial"):
        say(f"removing {partial.name}, a killed build's unfinished output")
        _remove(partial)
    listed = _buildah("containers", "--format", "{{.ContainerID}} {{.ImageName}}", capture=True)
    rows = [line.split() for line in listed.splitlines()]
    leftovers = [row[0] for row in rows if len(row) == 2 and row[1].startswith(base_ref(""))]
    if leftovers:
        say(f"removing {len(leftovers)} working container(s) a killed build left")
        _buildah("rm", *leftovers, stdout=subprocess.DEVNULL)


def layout_path(name: str, key: str) -> Path:
    return CACHE / f"{name}-{key}.oci"


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def build_image(name: str, layout: Path, base_image: str, version: str) -> Path:
    """One image's layout, built only when it does not exist yet (its name carries its key).

    The build commits straight into the layout (`-t oci:...`): nothing lands in the store, so
    there is no second pass to push and no image to remove. Layers stay uncompressed (buildah
    build's default): the layout is read once, by `ctr images import` on this same machine, and
    on 2 cores gzip of the PyTorch image's 6 GB layer cost ~9 minutes here, then more to undo."""
    build_args = {"PYTHON_IMAGE": base_image}
    if layout.is_dir():
        say(f"{name}: cached {layout}")
        return layout
    remove_stale_layouts(name)  # before building: the PyTorch image alone is 6 GB
    check_room(name)
    dockerfile = REPO / "images" / f"{name}.Dockerfile"
    started = time.monotonic()
    say(f"{name}: building {dockerfile.relative_to(REPO)} on {base_image}")
    partial = CACHE / f".{layout.name}.partial"  # renamed into place only once complete
    try:
        _buildah("build", "--layers=false", "--force-rm", "--pull-never", *_trust_mounts(),
                 "-f", str(dockerfile), "--ignorefile", str(dockerfile.with_name(dockerfile.name + ".dockerignore")),
                 *(arg for k, v in build_args.items() for arg in ("--build-arg", f"{k}={v}")),
                 "-t", f"oci:{partial}:{archive_ref(name, version)}", str(REPO))
        partial.rename(layout)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    say(f"{name}: built in {time.monotonic() - started:.0f}s, {_size(layout) / 2**20:.0f} MiB: {layout}")
    return layout


def drop_node_copies(todo: list[str]) -> None:
    """Empties the e2e node's containerd store before images it holds are built anew: the old
    copies (content and unpacked snapshots, about 18 GB for the three) would otherwise share the
    disk with the build's peak. Left alone while a node runs (it holds the node lock): load_image
    replaces its copies then."""
    from tests.controlplane import node  # the node's paths and lock, in one place

    if not node.CONTAINERD_ROOT.exists():
        return
    try:
        node.drop_imported_images(lock_timeout=0)
    except node.NodeBusy:
        say(f"{', '.join(todo)}: a real node runs; its copies of the old images stay until replaced")
        return
    say(f"{', '.join(todo)}: emptied the e2e node's image store ({node.CONTAINERD_ROOT}): its copies are "
        "about to be replaced; the next node start and load_image import again")


def build_all(names: list[str]) -> dict[str, Path]:
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder at a time per cache
        remove_build_leftovers()
        builder = _run("buildah", "--version", capture=True)  # both versions enter every key
        debootstrap = _run("debootstrap", "--version", capture=True)
        base = base_key(debootstrap)
        args = {"PYTHON_IMAGE": base_ref(base)}
        layouts = {name: layout_path(name, image_key(REPO, name, base, builder, args)) for name in names}
        todo = [name for name, layout in layouts.items() if not layout.is_dir()]
        if todo:  # before the base too: the node's old copies go before anything is built
            drop_node_copies(todo)
        version = app_version(REPO)
        base_image, _ = ensure_base(debootstrap)
        return {name: build_image(name, layouts[name], base_image, version) for name in names}


def build_images(names: tuple[str, ...] = IMAGES) -> dict[str, Path]:
    """Layouts of the named images, building what is missing: what an e2e fixture calls.
    Goes through hack/build-images.sh, so that buildah and debootstrap get installed when missing."""
    result = subprocess.run(["bash", str(REPO / "hack" / "build-images.sh"), *names],
                            check=True, text=True, stdout=subprocess.PIPE)
    return dict(zip(names, (Path(line) for line in result.stdout.split()), strict=False))


def main(argv: list[str]) -> int:
    names = argv or list(IMAGES)
    unknown = sorted(set(names) - set(IMAGES))
    if unknown:
        print(f"build-images: unknown image(s) {unknown}; known: {list(IMAGES)}", file=sys.stderr)
        return 2
    try:
        built = build_all(names)
    except NoRoom as refused:
        say(str(refused))
        return 1
    for path in built.values():
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
