"""``gar eval --live`` drives a real worker with the evaluation trace built from the shared data
and its decisions agree 100% with the offline run of the same policy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from streams.config import Settings

pytestmark = pytest.mark.integration
N = 300


def _live(tmp_path: Path, policies: str, *extra: str) -> tuple[dict[str, Any], str]:
    data = Settings().data.dir
    out = tmp_path / "live.json"
    gar = Path(sys.executable).with_name("gar")
    run = subprocess.run(
        [
            str(gar),
            "eval",
            "--live",
            "--correctness",
            str(data / "correctness" / "gsm8k-zeroeval.csv.gz"),
            str(data / "correctness" / "routerbench-subset.csv.gz"),
            "--energy",
            str(data / "energy" / "mlenergy-v3-llm.csv"),
            "--carbon",
            str(data / "carbon" / "electricitymaps-hourly-2023"),
            "--requests",
            str(N),
            "--days",
            "2",
            "--policies",
            policies,
            "--json",
            str(out),
            *extra,
        ],
        capture_output=True,
        timeout=600,
    )
    assert run.returncode == 0, (run.stdout + run.stderr).decode()[-3000:]
    return json.loads(out.read_text()), run.stdout.decode()


def _assert_identical(name: str, res: dict[str, Any], stdout: str) -> None:
    assert res["identical"], (name, res["mismatches"], res["missing_online"])
    assert res["agree"] == res["matched"] == res["n_offline"] == res["n_online"] == N
    assert res["dead_letters"] == []
    # not a trivial agreement: the trace makes the policy use several deployments
    assert len(res["decisions_per_model_region"]) > 1, res["decisions_per_model_region"]
    assert f"{name}: {N}/{N} decisions agree (100.00%)" in stdout


def test_live_decisions_agree_with_the_offline_run(tmp_path: Path) -> None:
    report, stdout = _live(tmp_path, "gar-pd,carbon-greedy")
    assert set(report["live"]) == {"gar-pd", "carbon-greedy"}
    for name, res in report["live"].items():
        _assert_identical(name, res, stdout)
        # gar-pd's default (balanced) pools its accuracy duals per partition; the greedy
        # baseline has none.
        assert bool(res["decisions_per_mu_scope"]) == (name == "gar-pd")
    assert report["scenario"]["n_requests"] == N


def test_live_decisions_with_pooled_duals_agree_with_the_offline_run(tmp_path: Path) -> None:
    """One mu per requests partition: the worker decides each partition's requests with its
    scope's state as the offline run decides each scope's."""
    report, stdout = _live(
        tmp_path, "gar-pd", "--policy-config", '{"mu_pooled": true}', "--tenants", "12"
    )
    res = report["live"]["gar-pd"]
    _assert_identical("gar-pd", res, stdout)
    # every decision priced with its partition's pooled mu, over several partitions
    scopes = res["decisions_per_mu_scope"]
    assert sum(scopes.values()) == N and len(scopes) > 1, scopes
    assert set(scopes) <= {f"p{p}" for p in range(report["scenario"]["partitions"])}
