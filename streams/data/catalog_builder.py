"""Build a routing ``Catalog`` from the shared real data.

Priors and default output lengths come only from the *calibration half* of the questions
(a fixed hash split, :func:`calibration_mask`); the evaluation trace draws only from the other
half, so the priors never see the questions they are scored on. Priors are weak (strength 20
pseudo-observations by default): telemetry takes over after a few dozen completions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from streams.core import Catalog
from streams.data.correctness import CorrectnessData
from streams.data.energy import EnergyProfile
from streams.data.mapping import EnergyMapping, MappingOptions, map_model
from streams.data.regions import CLIENT_SITES, rtt_ms, zone_site

# Five open models from 7B to 70B per benchmark family (the paper's pool size), one ladder from
# each correctness file: GSM8K (ZeroEval) and the RouterBench subset.
GSM8K_MODELS: tuple[str, ...] = (
    "Qwen2-7B-Instruct",
    "Llama-3.1-8B-Instruct",
    "gemma-2-9b-it",
    "gemma-2-27b-it",
    "Llama-3.1-70B-Instruct",
)
ROUTERBENCH_MODELS: tuple[str, ...] = (
    "mistralai/mistral-7b-chat",
    "WizardLM/WizardLM-13B-V1.2",
    "zero-one-ai/Yi-34B-Chat",
    "mistralai/mixtral-8x7b-chat",
    "meta/llama-2-70b-chat",
)
DEFAULT_MODELS: tuple[str, ...] = GSM8K_MODELS + ROUTERBENCH_MODELS
DEFAULT_ZONES: tuple[str, ...] = ("US-MIDA-PJM", "US-CAL-CISO", "GB", "DE-LU", "SG")
DEFAULT_PRIOR_STRENGTH = 20.0
MIN_OUTPUT_TOKENS = 1.0


def calibration_mask(data: CorrectnessData) -> npt.NDArray[np.bool_]:
    """True for the calibration half: a fixed hash of ``dataset/query_id`` (seed-free, stable)."""
    names = data.datasets
    return np.array(
        [
            hashlib.sha256(f"{names[d]}/{q}".encode()).digest()[0] % 2 == 0
            for d, q in zip(data.dataset_idx.tolist(), data.query_ids, strict=True)
        ],
        dtype=np.bool_,
    )


def filled_output_tokens(data: CorrectnessData) -> npt.NDArray[np.float64]:
    """Output tokens with unknowns filled by the dataset's median known length (at least 1)."""
    tokens = data.output_tokens_est.copy()
    for d in range(len(data.datasets)):
        rows = data.dataset_idx == d
        known = tokens[rows][np.isfinite(tokens[rows])]
        fill = max(MIN_OUTPUT_TOKENS, float(np.median(known))) if known.size else MIN_OUTPUT_TOKENS
        block = tokens[rows]
        block[~np.isfinite(block)] = fill
        tokens[rows] = np.maximum(block, MIN_OUTPUT_TOKENS)
    return tokens


def open_models(data: CorrectnessData) -> list[str]:
    return [m for m in data.models if data.is_open(m)]


@dataclass
class BuiltCatalog:
    catalog: Catalog
    mappings: dict[str, EnergyMapping]
    datasets_by_model: dict[str, list[str]]
    notes: dict[str, Any] = field(default_factory=dict)


def build_catalog(
    data: CorrectnessData,
    profiles: list[EnergyProfile],
    models: Sequence[str] = DEFAULT_MODELS,
    zones: Sequence[str] = DEFAULT_ZONES,
    *,
    prior_strength: float = DEFAULT_PRIOR_STRENGTH,
    mapping: MappingOptions | None = None,
    version: str = "default-1",
) -> BuiltCatalog:
    calib = calibration_mask(data)
    tokens = filled_output_tokens(data)
    unknown = [m for m in models if m not in data.models]
    if unknown:
        raise KeyError(f"model(s) {unknown} not in the correctness data; have {data.models}")
    mappings: dict[str, EnergyMapping] = {}
    model_dicts: list[dict[str, Any]] = []
    datasets_by_model: dict[str, list[str]] = {}
    for name in models:
        mi = data.model_index(name)
        m = map_model(name, float(data.params_b[mi]), profiles, mapping)
        mappings[name] = m
        priors: dict[str, dict[str, float]] = {}
        out_tokens: dict[str, float] = {}
        for d, dataset in enumerate(data.datasets):
            rows = calib & (data.dataset_idx == d) & (data.correct[:, mi] >= 0)
            if not rows.any():
                continue
            priors[dataset] = {
                "mean": round(float(data.correct[rows, mi].mean()), 4),
                "strength": prior_strength,
            }
            out_tokens[dataset] = round(float(tokens[rows, mi].mean()), 1)
        if not priors:
            raise KeyError(f"model {name!r} has no calibration questions")
        datasets_by_model[name] = sorted(priors)
        model_dicts.append(
            {
                "name": name,
                "params_b": float(data.params_b[mi]),
                "energy_per_input_token_j": round(m.energy_per_input_token_j, 5),
                "energy_per_output_token_j": round(m.energy_per_output_token_j, 5),
                "ttft_ms": round(m.ttft_ms, 2),
                "itl_ms": round(m.itl_median_ms, 2),
                "default_output_tokens": out_tokens,
                "correctness_prior": priors,
                "notes": f"energy profile: {m.rule} (ML.ENERGY line {m.source_line})",
            }
        )
    regions = [
        {
            "name": z,
            "zone": z,
            "pue": zone_site(z).pue,
            "rtt_ms": {c: rtt_ms(site, zone_site(z)) for c, site in CLIENT_SITES.items()},
        }
        for z in zones
    ]
    catalog = Catalog.from_dict(
        {"format": "gar-catalog/1", "version": version, "models": model_dicts, "regions": regions}
    )
    return BuiltCatalog(catalog, mappings, datasets_by_model)
