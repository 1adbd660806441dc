from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from streams.data import (
    DataFileError,
    load_carbon_dir,
    load_correctness,
    load_energy,
    load_zone,
)


def test_correctness_merges_both_files(shared_data: Path) -> None:
    data = load_correctness(
        [
            shared_data / "correctness/gsm8k-zeroeval.csv.gz",
            shared_data / "correctness/routerbench-subset.csv.gz",
        ]
    )
    assert set(data.datasets) == {"gsm8k", "arc-challenge", "winogrande", "mbpp"}
    assert data.n_questions == 1319 + 1470 + 1267 + 427
    # Published reference numbers from the data README.
    assert data.accuracy("Llama-3.1-70B-Instruct", "gsm8k") == pytest.approx(0.942, abs=0.002)
    assert data.accuracy("gemma-2-9b-it", "gsm8k") == pytest.approx(0.874, abs=0.002)
    # The two files cover disjoint model sets: no cross-file answers are invented.
    assert data.coverage("Llama-3.1-8B-Instruct", "mbpp") == 0.0
    assert data.coverage("mistralai/mistral-7b-chat", "mbpp") == 1.0
    assert not data.is_open("gpt-4-1106-preview")
    assert data.is_open("meta/llama-2-70b-chat")
    # RouterBench stores 0 for unknown lengths: they become NaN, real lengths stay.
    mbpp = data.datasets.index("mbpp")
    arc = data.datasets.index("arc-challenge")
    m = data.model_index("mistralai/mistral-7b-chat")
    assert np.nanmean(data.output_tokens_est[data.dataset_idx == mbpp, m]) > 50
    assert np.isnan(data.output_tokens_est[data.dataset_idx == arc, m]).mean() > 0.5


def test_energy_rows_are_typed(shared_data: Path) -> None:
    rows = load_energy(shared_data / "energy/mlenergy-v3-llm.csv")
    assert len(rows) > 100
    llama = [r for r in rows if r.model_id == "meta-llama/Llama-3.1-70B-Instruct"]
    assert llama and all(not r.is_moe for r in llama)
    assert any(r.is_moe for r in rows if "gpt-oss" in r.model_id)
    # Energy per token falls as the batch grows (the README's stated trade-off).
    h100 = sorted((r for r in llama if r.gpu_model == "H100"), key=lambda r: r.max_num_seqs)
    assert h100[0].energy_per_token_j > h100[-1].energy_per_token_j
    assert h100[0].median_itl_ms < h100[-1].median_itl_ms


@pytest.mark.parametrize("signal", ["direct", "lca"])
def test_carbon_zone(shared_data: Path, signal: str) -> None:
    zone = load_zone(shared_data / "carbon/electricitymaps-hourly-2023/DE-LU.csv.gz", signal)  # type: ignore[arg-type]
    assert zone.zone == "DE-LU" and zone.zone_id == "DE"
    assert zone.ts_ms.size == 8760
    assert np.all(np.diff(zone.ts_ms) == 3_600_000)
    assert zone.ts_ms[0] == np.datetime64("2023-01-01T00:00", "ms").astype(np.int64)
    assert 0 < zone.intensity_g_per_kwh.mean() < 1000
    assert zone.at([zone.ts_ms[5] + 1])[0] == zone.intensity_g_per_kwh[5]


def test_lca_exceeds_direct_and_estimated_flag(shared_data: Path) -> None:
    carbon = shared_data / "carbon/electricitymaps-hourly-2023"
    direct = load_carbon_dir(carbon, ["GB", "IN-WE"], "direct")
    lca = load_carbon_dir(carbon, ["GB", "IN-WE"], "lca")
    for z in ("GB", "IN-WE"):
        assert np.all(lca[z].intensity_g_per_kwh >= direct[z].intensity_g_per_kwh)
    assert direct["IN-WE"].estimated.all()
    assert direct["GB"].estimated.mean() < 0.1


def test_all_zones_load(shared_data: Path) -> None:
    zones = load_carbon_dir(shared_data / "carbon/electricitymaps-hourly-2023")
    assert len(zones) == 16


def _write_gz(path: Path, text: str) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write(text)
    return path


def test_malformed_correctness_names_file_and_line(tmp_path: Path) -> None:
    bad = _write_gz(
        tmp_path / "bad.csv.gz",
        "query_id,dataset,model,params_b,correct,output_tokens_est\n"
        "q1,gsm8k,m,7,1,10\nq2,gsm8k,m,7,maybe,10\n",
    )
    with pytest.raises(DataFileError) as info:
        load_correctness([bad])
    assert info.value.line == 3 and info.value.path == bad
    assert "bad.csv.gz:3" in str(info.value)


def test_missing_column_and_unknown_zone(tmp_path: Path, shared_data: Path) -> None:
    bad = tmp_path / "x.csv"
    bad.write_text("query_id,dataset,model\nq,d,m\n")
    with pytest.raises(DataFileError, match="missing column"):
        load_correctness(bad)
    with pytest.raises(DataFileError, match="no such file"):
        load_energy(tmp_path / "nope.csv")
    with pytest.raises(DataFileError, match="XX-NOPE"):
        load_carbon_dir(shared_data / "carbon/electricitymaps-hourly-2023", ["XX-NOPE"])


def test_bad_timestamp_names_line(tmp_path: Path) -> None:
    header = (
        "Datetime (UTC),Country,Zone Name,Zone Id,Carbon Intensity gCO₂eq/kWh (direct),"
        "Carbon Intensity gCO₂eq/kWh (LCA),Low Carbon Percentage,Renewable Percentage,"
        "Data Source,Data Estimated,Data Estimation Method\n"
    )
    rows = "2024-01-01 00:00:00,X,X,XX,10,20,1,1,s,false,\nnot-a-date,X,X,XX,10,20,1,1,s,false,\n"
    path = _write_gz(tmp_path / "XX.csv.gz", header + rows)
    with pytest.raises(DataFileError) as info:
        load_zone(path)
    assert info.value.line == 3
    ok = _write_gz(tmp_path / "YY.csv.gz", header + rows.splitlines()[0] + "\n")
    assert load_zone(ok).ts_ms.size == 1  # another year parses without code changes
