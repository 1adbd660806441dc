"""A private Docker engine for the compose test: started and stopped by PID, nothing left behind.

Debian's ``dockerd`` runs here as root with no bridge and no iptables rules, and its data, exec
state and API socket under one directory of ours, so it never meets another engine on the
machine. Storage is overlay2 where the kernel allows it, else vfs: vfs copies the whole image
for every layer and container (measured here: 8 s to start a container of a 534 MB image, about
1 s on overlay2, and 11 minutes to delete what one stack run had left), overlay2 shares them.
With no bridge, containers can only use host networking (or none): no bridge or user-defined
network, whose private-range addresses must not be used on these machines, is created by
accident through the default bridge.

``stop()`` ends the daemon (SIGTERM, then SIGKILL) and any containerd or shim that outlived it,
unmounts what it left mounted under its directory (``<exec-root>/netns/default`` among them),
and ``remove()`` deletes the directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from streams.devenv.process import DevProcessError, ManagedProcess

DOCKERD = "dockerd"
# The Debian CLI matches the Debian daemon's API; another `docker` may come first on PATH.
DOCKER_CLI_CANDIDATES = ("/usr/bin/docker", "docker")


@dataclass(frozen=True)
class EngineLayout:
    root: Path

    @property
    def data_root(self) -> Path:
        return self.root / "data"

    @property
    def exec_root(self) -> Path:
        return self.root / "exec"

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    @property
    def pid_file(self) -> Path:
        return self.root / "dockerd.pid"

    @property
    def log_file(self) -> Path:
        return self.root / "dockerd.log"


class DockerEngine:
    def __init__(
        self,
        root: Path,
        start_timeout_s: float = 60.0,
        storage_drivers: Sequence[str] = ("overlay2", "vfs"),
    ) -> None:
        self.layout = EngineLayout(root.resolve())
        self.start_timeout_s = start_timeout_s
        self.storage_drivers = tuple(storage_drivers)
        self.storage_driver: str | None = None  # the one the running daemon uses
        self.process = ManagedProcess(
            name="dockerd",
            pid_file=self.layout.root / "dockerd.managed.pid",
            log_file=self.layout.log_file,
            marker=str(self.layout.socket),
        )

    @property
    def host(self) -> str:
        return f"unix://{self.layout.socket}"

    def env(self) -> dict[str, str]:
        """Environment for docker and docker-compose talking to this engine only."""
        # BuildKit: the classic builder commits a container per step, and on vfs every commit
        # copies the whole image (a 14-step build spent most of its time copying).
        return {**os.environ, "DOCKER_HOST": self.host, "DOCKER_BUILDKIT": "1"}

    def docker_cli(self) -> str:
        for candidate in DOCKER_CLI_CANDIDATES:
            found = shutil.which(candidate)
            if found:
                return found
        raise DevProcessError("docker CLI not found: install docker.io (see scripts/bootstrap.sh)")

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        if self.process.is_running():
            self.process.wait_until(self.healthy, self.start_timeout_s)
            return
        if shutil.which(DOCKERD) is None:
            raise DevProcessError("dockerd not found: install docker.io (see scripts/bootstrap.sh)")
        lay = self.layout
        for d in (lay.data_root, lay.exec_root):
            d.mkdir(parents=True, exist_ok=True)
        failures = []
        for driver in self.storage_drivers:
            argv = [
                DOCKERD, "--bridge=none", "--iptables=false", "--ip6tables=false",
                f"--storage-driver={driver}", "--data-root", str(lay.data_root),
                "--exec-root", str(lay.exec_root), "-H", self.host,
                "--pidfile", str(lay.pid_file),
            ]  # fmt: skip
            self.process.spawn(argv)
            try:
                self.process.wait_until(self.healthy, self.start_timeout_s)
            except DevProcessError as exc:  # e.g. no overlay support: try the next driver
                failures.append(f"{driver}: {exc}")
                self.process.stop(10)
                continue
            self.storage_driver = driver
            return
        raise DevProcessError("dockerd did not start:\n" + "\n".join(failures))

    def healthy(self) -> bool:
        if not self.layout.socket.exists():
            return False
        result = self.docker(["version", "--format", "{{.Server.Version}}"], check=False)
        return result.returncode == 0

    def stop(self, timeout_s: float = 60.0) -> None:
        """Stop the daemon and everything it started; unmount what it left mounted."""
        self.process.stop(timeout_s)
        for proc in self._leftover_processes():
            try:
                proc.kill()
                proc.wait(10)
            except psutil.NoSuchProcess:
                continue
        for mount in reversed(self.mounts()):
            subprocess.run(["umount", "-l", mount], check=False, capture_output=True)
        still = self.mounts()
        if still:
            raise DevProcessError(f"still mounted after stopping dockerd: {still}")

    def remove(self) -> None:
        """Delete the engine's directory (refuses while the daemon runs or a mount remains)."""
        if self.process.is_running() or self.mounts():
            raise DevProcessError("stop the engine before removing its directory")
        shutil.rmtree(self.layout.root, ignore_errors=True)

    # -- what it leaves behind ------------------------------------------------------------
    def mounts(self) -> list[str]:
        """Mount points under the engine's directory (from /proc/self/mountinfo)."""
        root = str(self.layout.root)
        found = []
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4].replace("\\040", " ")
            if point == root or point.startswith(root + "/"):
                found.append(point)
        return found

    def leftover_processes(self) -> list[int]:
        return [p.pid for p in self._leftover_processes()]

    def _leftover_processes(self) -> list[psutil.Process]:
        """containerd, shims or container processes that name our directory or socket."""
        root = str(self.layout.root)
        out = []
        for proc in psutil.process_iter(["pid", "cmdline"]):
            try:
                cmdline = " ".join(proc.info["cmdline"] or [])
            except psutil.NoSuchProcess:
                continue
            if root in cmdline and proc.pid != os.getpid():
                out.append(proc)
        return out

    # -- commands -------------------------------------------------------------------------
    def docker(
        self,
        args: Sequence[str],
        *,
        check: bool = True,
        input_bytes: bytes | None = None,
        timeout_s: float | None = 600,
    ) -> subprocess.CompletedProcess[str]:
        """Run the docker CLI against this engine; stdout and stderr as text."""
        raw = subprocess.run(
            [self.docker_cli(), *args],
            env=self.env(),
            input=input_bytes,
            capture_output=True,
            timeout=timeout_s,
            check=False,
        )
        result = subprocess.CompletedProcess(
            raw.args,
            raw.returncode,
            raw.stdout.decode(errors="replace"),
            raw.stderr.decode(errors="replace"),
        )
        if check and result.returncode != 0:
            raise DevProcessError(f"docker {' '.join(args[:3])} failed:\n{result.stderr[-3000:]}")
        return result
