"""Valid sample records and a small catalog shared by the edges tests."""

from __future__ import annotations

from typing import Any

CATALOG: dict[str, Any] = {
    "format": "gar-catalog/1",
    "version": "edges-test-1",
    "models": [
        {
            "name": "meta/llama-3.1-8b",
            "params_b": 8.0,
            "energy_per_input_token_j": 0.02,
            "energy_per_output_token_j": 0.25,
            "ttft_ms": 80.0,
            "itl_ms": 10.0,
            "default_output_tokens": {"gsm8k": 200.0},
            "correctness_prior": {"gsm8k": 0.8, "mbpp": 0.5},
        },
        {
            "name": "llama-3.1-70b",
            "params_b": 70.0,
            "energy_per_input_token_j": 0.12,
            "energy_per_output_token_j": 1.5,
            "ttft_ms": 300.0,
            "itl_ms": 30.0,
            "default_output_tokens": {"gsm8k": 180.0},
            "correctness_prior": {"gsm8k": 0.94, "mbpp": 0.7},
        },
    ],
    "regions": [
        {"name": "eu-north", "zone": "SE", "pue": 1.1, "rtt_ms": {"eu": 30.0, "us": 120.0}},
        {"name": "us-east", "zone": "US-MIDA-PJM", "pue": 1.3, "rtt_ms": {"eu": 90.0, "us": 20.0}},
    ],
}

VALID_REQUEST: dict[str, Any] = {
    "schema_version": 1,
    "request_id": "req-1",
    "tenant": "acme",
    "dataset": "gsm8k",
    "input_tokens": 180,
    "output_tokens_est": 120,
    "client_region": "eu",
    "ts_ms": 1_672_531_200_000,
}

VALID_COMPLETION: dict[str, Any] = {
    "schema_version": 1,
    "request_id": "req-1",
    "tenant": "acme",
    "model": "llama-3.1-70b",
    "region": "eu-north",
    "dataset": "gsm8k",
    "ts_ms": 1_672_531_203_000,
    "latency_ms": 2500.0,
    "input_tokens": 180,
    "output_tokens": 150,
    "energy_j": 240.5,
    "correct": True,
}

VALID_INTENSITY: dict[str, Any] = {
    "schema_version": 1,
    "zone": "SE",
    "intensity_g_per_kwh": 41.5,
    "ts_ms": 1_672_531_200_000,
    "source": "electricitymaps-csv",
    "signal_type": "average",
    "estimated": False,
}
