"""The built wheel, installed into a fresh virtual environment outside the checkout, runs the
demo on the sample of the data it ships: ``pip install`` + ``gar dev up`` + ``gar demo``. The
base install is the producer's client only."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from streams.devenv.ports import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]
ROOT = Path(__file__).resolve().parents[2]


def run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 600) -> str:
    done = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{cmd}: {done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def test_wheel_in_a_fresh_venv_runs_the_demo_on_the_sample(tmp_path: Path) -> None:
    work = tmp_path / "elsewhere"
    work.mkdir()
    # Only the user's environment: no GAR_* of the checkout, the jars and influxd cached.
    env = {k: v for k, v in os.environ.items() if not k.startswith("GAR_")}
    env["HOME"] = str(tmp_path / "home")
    env["GAR_DEV__CACHE_DIR"] = os.environ.get("GAR_DEV__CACHE_DIR", str(ROOT / ".cache"))
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
         "-w", str(tmp_path / "dist"), str(ROOT)],
        work, env,
    )  # fmt: skip
    wheel = next((tmp_path / "dist").glob("gar_streams-*.whl"))
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)], work, env)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    lock = ["-c", str(ROOT / "requirements.lock")]  # the versions CI tested, from pip's cache

    run([*pip, *lock, str(wheel)], work, env)  # the client only
    py = str(venv / "bin" / "python")
    probe = "import importlib.util as u, streams.client; print(u.find_spec('faust') is None)"
    assert run([py, "-c", probe], work, env).strip() == "True"
    no_server = subprocess.run(
        [str(venv / "bin" / "gar"), "demo"], cwd=work, env=env, capture_output=True, text=True
    )
    assert no_server.returncode == 2
    assert "pip install 'gar-streams[server]'" in no_server.stderr

    run([*pip, *lock, f"{wheel}[server]"], work, env)
    gar = str(venv / "bin" / "gar")
    env |= {
        "GAR_DEV__KAFKA_PORT": str(free_port()),
        "GAR_DEV__KAFKA_CONTROLLER_PORT": str(free_port()),
        "GAR_DEV__METRICS_PORT": str(free_port()),
    }
    env["GAR_KAFKA__BOOTSTRAP_SERVERS"] = f"127.0.0.1:{env['GAR_DEV__KAFKA_PORT']}"
    env["GAR_INFLUX__URL"] = f"http://127.0.0.1:{env['GAR_DEV__METRICS_PORT']}"
    run([gar, "dev", "up"], work, env, timeout=300)
    try:
        out = run([gar, "demo", "--requests", "400", "--rate", "400"], work, env)
        assert "all 400 requests accounted for" in out, out
        assert "deleted the run's" in out
        left = run([gar, "topics", "list", "--prefix", "demo."], work, env)
        assert left.strip() == ""  # the demo deleted its topics
    finally:
        run([gar, "dev", "down", "--clean"], work, env, timeout=120)
    state = tmp_path / "home" / ".local" / "state" / "gar-streams"
    assert (state / "faust").is_dir()  # Faust's data dir under the user's state dir
    assert sorted(p.name for p in work.iterdir()) == []  # nothing left where it ran
