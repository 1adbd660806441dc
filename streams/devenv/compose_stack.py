"""The docker-compose stack on a private engine: docker-compose.yml + docker-compose.local.yml.

``ComposeStack`` drives Debian's docker-compose v1 through ``DOCKER_HOST`` (the engine's own
socket only). Before every ``up`` it renders the configuration and refuses to start anything
unless every service uses host networking and no network is declared: compose would otherwise
create a bridge network for the project, and private-range addresses must not be used here.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streams.devenv.docker_engine import DockerEngine
from streams.devenv.process import DevProcessError

MAIN_FILE = "docker-compose.yml"
LOCAL_FILE = "docker-compose.local.yml"
# `docker-compose config` prints YAML; docker-compose (Python) ships PyYAML, so its own
# interpreter turns that into JSON (the project itself does not depend on a YAML library).
_YAML_TO_JSON = "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)"


def compose_binary() -> str:
    found = shutil.which("docker-compose")
    if found is None:
        raise DevProcessError("docker-compose not found: bash scripts/bootstrap.sh")
    return found


def rendered_config(
    files: Sequence[Path], cwd: Path, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """``docker-compose config`` of ``files`` as a dict (variables substituted, files merged)."""
    binary = compose_binary()
    args = [binary, *(a for f in files for a in ("-f", str(f))), "config"]
    rendered = subprocess.run(args, capture_output=True, text=True, cwd=cwd, env=env, check=False)
    if rendered.returncode != 0:
        raise DevProcessError(f"docker-compose config failed:\n{rendered.stderr[-3000:]}")
    interpreter = Path(binary).read_text(errors="replace").splitlines()[0]
    if not interpreter.startswith("#!"):
        raise DevProcessError(f"{binary} is not a Python script; cannot read its YAML output")
    as_json = subprocess.run(
        [interpreter[2:].strip().split()[0], "-c", _YAML_TO_JSON],
        input=rendered.stdout,
        capture_output=True,
        text=True,
        check=True,
    )
    config: dict[str, Any] = json.loads(as_json.stdout)
    return config


def host_network_problems(config: dict[str, Any]) -> list[str]:
    """Why this configuration could create a network (empty: host networking only)."""
    problems = []
    if config.get("networks"):
        problems.append(f"networks declared: {sorted(config['networks'])}")
    for name, service in sorted(config.get("services", {}).items()):
        if service.get("network_mode") != "host":
            problems.append(f"{name}: network_mode {service.get('network_mode')!r}, not host")
        if service.get("networks"):
            problems.append(f"{name}: joins networks {sorted(service['networks'])}")
    return problems


@dataclass(frozen=True)
class ContainerState:
    name: str
    service: str
    status: str  # running, exited, ...
    health: str | None  # healthy, unhealthy, starting; None without a healthcheck
    exit_code: int


class ComposeStack:
    def __init__(self, engine: DockerEngine, repo: Path, project: str, env: dict[str, str]) -> None:
        self.engine = engine
        self.repo = repo
        self.project = project
        self.files = [repo / MAIN_FILE, repo / LOCAL_FILE]
        self.env = {**engine.env(), **env}

    def compose(
        self, args: Sequence[str], *, check: bool = True, timeout_s: float = 900
    ) -> subprocess.CompletedProcess[str]:
        files = [a for f in self.files for a in ("-f", str(f))]
        result = subprocess.run(
            [compose_binary(), "-p", self.project, *files, *args],
            cwd=self.repo,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        if check and result.returncode != 0:
            command = " ".join(args)
            raise DevProcessError(f"docker-compose {command} failed:\n{result.stderr[-4000:]}")
        return result

    def config(self) -> dict[str, Any]:
        return rendered_config(self.files, self.repo, self.env)

    def up(
        self,
        *,
        scale: dict[str, int] | None = None,
        services: Sequence[str] = (),
        no_deps: bool = False,
    ) -> None:
        """``up -d`` with the images already built; never recreates a running container
        (``no_deps``: leave the services' dependencies alone, e.g. to scale workers only)."""
        problems = host_network_problems(self.config())
        if problems:
            raise DevProcessError("refusing to start: " + "; ".join(problems))
        args = ["up", "-d", "--no-build", "--no-recreate", *(["--no-deps"] if no_deps else [])]
        for service, n in (scale or {}).items():
            args += ["--scale", f"{service}={n}"]
        self.compose([*args, *services])

    def down(self) -> None:
        """Containers and the project's volumes removed."""
        self.compose(["down", "--volumes", "--remove-orphans", "--timeout", "30"])

    def containers(self) -> list[ContainerState]:
        ids = self.engine.docker(
            ["ps", "-aq", "--filter", f"label=com.docker.compose.project={self.project}"]
        ).stdout.split()
        if not ids:
            return []
        inspected = json.loads(self.engine.docker(["inspect", *ids]).stdout)
        out = []
        for c in inspected:
            state = c["State"]
            out.append(
                ContainerState(
                    name=c["Name"].lstrip("/"),
                    service=c["Config"]["Labels"].get("com.docker.compose.service", ""),
                    status=state["Status"],
                    health=(state.get("Health") or {}).get("Status"),
                    exit_code=int(state.get("ExitCode", 0)),
                )
            )
        return sorted(out, key=lambda c: c.name)

    def logs(self, service: str, tail: int = 60) -> str:
        result = self.compose(["logs", "--no-color", "--tail", str(tail), service], check=False)
        return result.stdout + result.stderr

    def volumes(self) -> list[str]:
        out = self.engine.docker(
            ["volume", "ls", "-q", "--filter", f"label=com.docker.compose.project={self.project}"]
        ).stdout
        return out.split()

    def networks(self) -> list[str]:
        """Every network the engine has besides its built-in host and none."""
        names = self.engine.docker(["network", "ls", "--format", "{{.Name}}"]).stdout.split()
        return [n for n in names if n not in ("host", "none")]
