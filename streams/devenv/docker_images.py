"""The images docker-compose.local.yml runs, built on this machine (no registry is reachable).

- ``gar-local/debian:bookworm``: a Debian base made with ``debootstrap --variant=minbase`` from
  the machine's apt source, with Python 3.11 (and venv) and Java 17, then ``docker import``.
- ``gar-streams:local``: ``docker/Dockerfile`` (the image the main compose file builds) on that
  base; Python packages from PyPI.
- ``gar-local/services:latest``: ``docker/local/services.Dockerfile``: the app image plus the
  Kafka jars and the influxd from the project's cache, run by ``gar dev serve``.

Caching: the base's root filesystem is kept as a tar in the cache dir, and after every build
the three images are saved together to one tar there. The next engine loads it (same image
ids, and BuildKit's inline cache metadata), so ``--cache-from`` reuses every layer whose inputs
did not change: a code edit rebuilds only the layers from ``COPY streams`` on.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from streams.config import DevSettings
from streams.devenv.broker import KafkaBroker
from streams.devenv.docker_engine import DockerEngine
from streams.devenv.influxdb import InfluxStore
from streams.devenv.process import DevProcessError

BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates", "openjdk-17-jre-headless")
APT_SOURCES = (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list"))
# The machine's own certificate authorities (e.g. an egress proxy's): a locally made base trusts
# what the machine trusts, or pip in the build cannot reach PyPI.
LOCAL_CAS = Path("/usr/local/share/ca-certificates")
CA_BUNDLE = "etc/ssl/certs/ca-certificates.crt"


@dataclass(frozen=True)
class LocalImages:
    base: str = "gar-local/debian:bookworm"
    app: str = "gar-streams:local"
    services: str = "gar-local/services:latest"

    def all(self) -> tuple[str, str, str]:
        return (self.base, self.app, self.services)


@dataclass
class BuildTimes:
    """Seconds per step, for the record (docs/operations.md)."""

    steps: dict[str, float] = field(default_factory=dict)

    def timed(self, name: str, started: float) -> None:
        self.steps[name] = round(time.monotonic() - started, 1)


def debian_mirror(sources: tuple[Path, ...] = APT_SOURCES) -> str:
    """The first Debian archive URI of the machine's apt sources (deb822 or one-line form)."""
    for path in sources:
        try:
            text = path.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            words = line.split()
            if words[:1] == ["URIs:"]:
                uris = [u for u in words[1:] if "security" not in u]
                if uris:
                    return uris[0]
            if words[:1] == ["deb"] and len(words) >= 3 and "security" not in words[1]:
                return words[2] if words[1].startswith("[") else words[1]
    raise DevProcessError("no Debian apt source found for debootstrap")


class ImageBuilder:
    def __init__(
        self,
        engine: DockerEngine,
        dev: DevSettings,
        repo: Path,
        images: LocalImages | None = None,
        mirror: str | None = None,
    ) -> None:
        self.engine = engine
        self.dev = dev
        self.repo = repo
        self.images = images or LocalImages()
        self.mirror = mirror
        self.cache = dev.cache_dir / "docker"
        self.times = BuildTimes()

    @property
    def rootfs_tar(self) -> Path:
        """Keyed by the packages and the machine's CAs, so a change to either makes a new one."""
        key = hashlib.sha256(",".join(BASE_PACKAGES).encode())
        for ca in _local_cas():
            key.update(ca.read_bytes())
        return self.cache / f"debian-bookworm-minbase-{key.hexdigest()[:12]}.tar"

    @property
    def saved_images(self) -> Path:
        return self.cache / "gar-local-images.tar"

    def build_all(self) -> BuildTimes:
        self.load_saved()
        self.base()
        self.app()
        self.services()
        self.save()
        return self.times

    def load_saved(self) -> None:
        if self.saved_images.exists():
            t0 = time.monotonic()
            self.engine.docker(["load", "-q", "-i", str(self.saved_images)], timeout_s=1800)
            self.times.timed("load cached images", t0)

    def base(self) -> None:
        if self._exists(self.images.base):
            return
        if not self.rootfs_tar.exists():
            self._debootstrap()
        t0 = time.monotonic()
        # pip reads PIP_CERT (its own bundle does not hold the machine's CAs).
        change = f"ENV PIP_CERT=/{CA_BUNDLE}"
        self.engine.docker(
            ["import", "-c", change, str(self.rootfs_tar), self.images.base], timeout_s=1800
        )
        self.times.timed("docker import base", t0)

    def app(self) -> None:
        t0 = time.monotonic()
        args = [
            "build", "--network", "host", "--build-arg", "BUILDKIT_INLINE_CACHE=1",
            "--build-arg", f"BASE_IMAGE={self.images.base}",
            "-t", self.images.app, "-f", str(self.repo / "docker" / "Dockerfile"),
        ]  # fmt: skip
        if self._exists(self.images.app):
            args += ["--cache-from", self.images.app]
        self.engine.docker([*args, str(self.repo)], timeout_s=3600)
        self.times.timed("build app image", t0)

    def services(self) -> None:
        t0 = time.monotonic()
        args = [
            "build", "--network", "host", "-t", self.images.services,
            "--build-arg", "BUILDKIT_INLINE_CACHE=1",
            "--build-arg", f"APP_IMAGE={self.images.app}",
            "--build-arg", f"KAFKA_VERSION={self.dev.kafka_version}",
            "--build-arg", f"INFLUXDB_VERSION={self.dev.influxdb_version}",
        ]  # fmt: skip
        if self._exists(self.images.services):
            args += ["--cache-from", self.images.services]
        with tempfile.TemporaryDirectory(dir=self.cache) as tmp:
            context = self._services_context(Path(tmp))
            self.engine.docker([*args, str(context)], timeout_s=1800)
        self.times.timed("build services image", t0)

    def save(self) -> None:
        t0 = time.monotonic()
        self.cache.mkdir(parents=True, exist_ok=True)
        partial = self.saved_images.with_suffix(".partial")
        self.engine.docker(["save", "-o", str(partial), *self.images.all()], timeout_s=1800)
        partial.replace(self.saved_images)
        self.times.timed("save images to the cache", t0)

    # -- internals ------------------------------------------------------------------------
    def _exists(self, image: str) -> bool:
        return self.engine.docker(["image", "inspect", image], check=False).returncode == 0

    def _debootstrap(self) -> None:
        if shutil.which("debootstrap") is None:
            raise DevProcessError(
                "debootstrap not found: install debootstrap (see scripts/bootstrap.sh)"
            )
        t0 = time.monotonic()
        self.cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.cache) as tmp:
            rootfs = Path(tmp) / "rootfs"
            cmd = [
                "debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
                "bookworm", str(rootfs), self.mirror or debian_mirror(),
            ]  # fmt: skip
            result = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                raise DevProcessError(f"debootstrap failed:\n{result.stdout[-3000:]}")
            _trust_local_cas(rootfs)
            partial = self.rootfs_tar.with_suffix(".partial")
            subprocess.run(["tar", "-C", str(rootfs), "-cf", str(partial), "."], check=True)
            partial.replace(self.rootfs_tar)
        self.times.timed("debootstrap base", t0)

    def _services_context(self, tmp: Path) -> Path:
        """The services build context: its Dockerfile, the jars and influxd (hard links into
        the cache where the filesystem allows, copies otherwise)."""
        libs = KafkaBroker(self.dev).fetch_jars()
        influxd = InfluxStore(self.dev).fetch_binary()
        context = tmp / "services"
        context.mkdir()
        shutil.copy2(self.repo / "docker" / "local" / "services.Dockerfile", context / "Dockerfile")
        shutil.copytree(libs, context / "kafka-libs", copy_function=_link_or_copy)
        _link_or_copy(str(influxd), str(context / "influxd"))
        return context


def _local_cas() -> list[Path]:
    return sorted(LOCAL_CAS.glob("*.crt")) if LOCAL_CAS.is_dir() else []


def _trust_local_cas(rootfs: Path) -> None:
    """Copy the machine's CAs into the rootfs and append them to its bundle (Debian's
    update-ca-certificates would too, but its Java hook fails outside a running system)."""
    cas = _local_cas()
    target = rootfs / LOCAL_CAS.relative_to("/")
    target.mkdir(parents=True, exist_ok=True)
    with (rootfs / CA_BUNDLE).open("ab") as bundle:
        for ca in cas:
            shutil.copy2(ca, target / ca.name)
            bundle.write(b"\n" + ca.read_bytes().strip() + b"\n")


def _link_or_copy(src: str, dst: str) -> str:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
    return dst
