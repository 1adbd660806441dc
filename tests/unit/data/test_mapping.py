from __future__ import annotations

from pathlib import Path

import pytest

from streams.data import load_energy
from streams.data.mapping import MappingOptions, looks_moe, map_model


@pytest.fixture(scope="module")
def profiles(shared_data: Path):  # type: ignore[no-untyped-def]
    return load_energy(shared_data / "energy/mlenergy-v3-llm.csv")


def test_moe_detection() -> None:
    assert looks_moe("mistralai/mixtral-8x7b-chat")
    assert looks_moe("Qwen/Qwen3-30B-A3B-Instruct-2507")
    assert not looks_moe("meta/llama-2-70b-chat")
    assert not looks_moe("Llama-3.1-8B-Instruct")


def test_exact_model_maps_to_itself(profiles) -> None:  # type: ignore[no-untyped-def]
    m = map_model("Llama-3.1-70B-Instruct", 70, profiles)
    assert m.profile_model_id == "meta-llama/Llama-3.1-70B-Instruct"
    assert m.gpu_model == "H100" and m.task == "lm-arena-chat"
    assert m.itl_p95_ms <= 50.0
    # Lowest J/token among the rows within the ITL cap on the same model/GPU/task.
    same = [
        p
        for p in profiles
        if p.model_id == m.profile_model_id
        and p.gpu_model == "H100"
        and p.task == "lm-arena-chat"
        and p.p95_itl_ms <= 50.0
    ]
    assert m.energy_per_output_token_j == min(p.energy_per_token_j for p in same)
    assert "nearest-dense" in m.rule and m.source_line > 1


def test_moe_maps_to_moe_and_dense_to_dense(profiles) -> None:  # type: ignore[no-untyped-def]
    moe = map_model("mistralai/mixtral-8x7b-chat", 47, profiles)
    assert moe.is_moe and moe.profile_active_params_b < moe.profile_total_params_b
    dense = map_model("zero-one-ai/Yi-34B-Chat", 34, profiles)
    assert not dense.is_moe and dense.profile_active_params_b == dense.profile_total_params_b
    assert dense.profile_total_params_b == 32.0  # nearest in log distance


def test_bigger_models_cost_more_per_token(profiles) -> None:  # type: ignore[no-untyped-def]
    small = map_model("Qwen2-7B-Instruct", 7, profiles)
    large = map_model("Llama-3.1-70B-Instruct", 70, profiles)
    assert large.energy_per_output_token_j > 3 * small.energy_per_output_token_j
    assert large.energy_per_input_token_j > small.energy_per_input_token_j


def test_itl_cap_changes_the_batch(profiles) -> None:  # type: ignore[no-untyped-def]
    tight = map_model("Llama-3.1-8B-Instruct", 8, profiles, MappingOptions(itl_p95_cap_ms=15))
    loose = map_model("Llama-3.1-8B-Instruct", 8, profiles, MappingOptions(itl_p95_cap_ms=80))
    assert tight.max_num_seqs < loose.max_num_seqs
    assert tight.energy_per_output_token_j > loose.energy_per_output_token_j


def test_unknown_size_is_refused(profiles) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="parameter count"):
        map_model("gpt-4-1106-preview", float("nan"), profiles)
