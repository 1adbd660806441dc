"""``gar eval --live`` drives a real worker with the evaluation trace built from the shared data
and its decisions agree 100% with the offline run of the same policy (issue 4)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from streams.config import Settings

pytestmark = pytest.mark.integration
N = 300


def test_live_decisions_agree_with_the_offline_run(tmp_path: Path) -> None:
    data = Settings().data.shared_data_dir
    out = tmp_path / "live.json"
    gar = Path(sys.executable).with_name("gar")
    run = subprocess.run(
        [str(gar), "eval", "--live",
         "--correctness", str(data / "correctness" / "gsm8k-zeroeval.csv.gz"),
         str(data / "correctness" / "routerbench-subset.csv.gz"),
         "--energy", str(data / "energy" / "mlenergy-v3-llm.csv"),
         "--carbon", str(data / "carbon" / "electricitymaps-hourly-2023"),
         "--requests", str(N), "--days", "2", "--policies", "gar-pd,carbon-greedy",
         "--json", str(out)],
        capture_output=True, timeout=600,
    )
    assert run.returncode == 0, (run.stdout + run.stderr).decode()[-3000:]
    report = json.loads(out.read_text())
    assert set(report["live"]) == {"gar-pd", "carbon-greedy"}
    for name, res in report["live"].items():
        assert res["identical"], (name, res["mismatches"], res["missing_online"])
        assert res["agree"] == res["matched"] == res["n_offline"] == res["n_online"] == N
        assert res["dead_letters"] == []
        # not a trivial agreement: the trace makes the policy use several deployments
        assert len(res["decisions_per_model_region"]) > 1, res["decisions_per_model_region"]
        assert f"{name}: {N}/{N} decisions agree (100.00%)" in run.stdout.decode()
    assert report["scenario"]["n_requests"] == N
