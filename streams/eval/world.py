"""The simulated world: what actually happens when request i is served by candidate k.

* serving latency (at the region) = TTFT x exp(s_t z_ttft) + out_tokens x ITL x exp(s_m z_itl)
  where ``s_m = ln(p95 ITL / median ITL) / 1.645`` of the model's ML.ENERGY row and
  ``s_t = 0.3``; the client sees serving latency + RTT x (1 + jitter), jitter ~ Exp(mean 5%).
* energy = (input tokens x J/input token + out tokens x J/output token) x exp(0.1 z_energy)
* CO2 (g) = energy / 3.6e6 x intensity(zone, hour) x PUE, with the hourly intensity (the
  chosen signal, "direct" by default) in force at the request's event time.
* correctness = the model's recorded answer on that question.

All noise is drawn once per request in the trace, so policies face the same luck.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from streams.core import Catalog
from streams.data.carbon import ZoneIntensity
from streams.data.mapping import EnergyMapping
from streams.eval.trace import Trace

TTFT_SIGMA = 0.3
ENERGY_SIGMA = 0.1
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Outcomes:
    """Realised outcomes, one entry per (request, candidate) pair asked for."""

    serving_ms: FloatArray
    latency_ms: FloatArray
    energy_j: FloatArray
    co2_g: FloatArray
    correct: npt.NDArray[np.int8]
    output_tokens: IntArray
    intensity_g_per_kwh: FloatArray


class World:
    def __init__(
        self,
        catalog: Catalog,
        trace: Trace,
        zones: Mapping[str, ZoneIntensity],
        mappings: Mapping[str, EnergyMapping],
    ) -> None:
        if tuple(trace.models) != catalog.model_names:
            raise ValueError("trace and catalog list different models")
        missing = [r.zone for r in catalog.regions if r.zone not in zones]
        if missing:
            raise KeyError(f"no carbon series for zone(s) {missing}")
        self.catalog = catalog
        self.trace = trace
        m = catalog.models
        self._ttft = np.array([s.ttft_ms for s in m])
        self._itl = np.array([s.itl_ms for s in m])
        self._itl_sigma = np.array(
            [
                max(0.0, math.log(mappings[s.name].itl_p95_ms / mappings[s.name].itl_median_ms))
                / 1.645
                for s in m
            ]
        )
        self._e_in = np.array([s.energy_per_input_token_j for s in m])
        self._e_out = np.array([s.energy_per_output_token_j for s in m])
        self._e_fixed = np.array([s.prefill_energy_j for s in m])
        # Intensity per (request, region) at the request's event time.
        self.intensity = np.stack([zones[r.zone].at(trace.ts_ms) for r in catalog.regions], axis=1)
        self.estimated = np.stack(
            [
                zones[r.zone].estimated[
                    np.clip(
                        np.searchsorted(zones[r.zone].ts_ms, trace.ts_ms, side="right") - 1,
                        0,
                        zones[r.zone].ts_ms.size - 1,
                    )
                ]
                for r in catalog.regions
            ],
            axis=1,
        )
        client_rows = np.array(
            [catalog.client_idx(c) for c in trace.client_regions], dtype=np.int64
        )
        self.rtt_ms = catalog.rtt_ms[client_rows[trace.client_idx]]  # (N, R)

    def outcomes(self, i: IntArray, k: IntArray) -> Outcomes:
        """Vectorised outcomes of serving requests ``i`` on candidates ``k`` (same shapes)."""
        t = self.trace
        mi = self.catalog.cand_model_idx[k]
        ri = self.catalog.cand_region_idx[k]
        out_tok = t.output_tokens[i, mi]
        serving = self._ttft[mi] * np.exp(TTFT_SIGMA * t.z_ttft[i]) + out_tok * self._itl[
            mi
        ] * np.exp(self._itl_sigma[mi] * t.z_itl[i])
        latency = serving + self.rtt_ms[i, ri] * (1.0 + t.rtt_jitter[i])
        energy = (
            self._e_fixed[mi] + t.input_tokens[i] * self._e_in[mi] + out_tok * self._e_out[mi]
        ) * np.exp(ENERGY_SIGMA * t.z_energy[i])
        intensity = self.intensity[i, ri]
        co2 = energy / 3.6e6 * intensity * self.catalog.pue[ri]
        return Outcomes(
            serving_ms=serving,
            latency_ms=latency,
            energy_j=energy,
            co2_g=co2,
            correct=t.correct[i, mi],
            output_tokens=out_tok,
            intensity_g_per_kwh=intensity,
        )

    def expected_co2_g(self) -> FloatArray:
        """(N, K) CO2 each candidate emits for each request *in expectation given what a router
        can know before the answer exists*: the request's input tokens, the true intensity at
        its hour, and the model's mean answer length on the request's dataset over this trace
        (hindsight, like oracle-lp's accuracies), energy noise at its mean. The realised CO2
        (``outcomes``) also depends on this question's own answer length and the energy draw,
        which no router sees when it decides."""
        t, cat = self.trace, self.catalog
        mean_out = np.zeros((len(t.dataset_names), len(cat.models)))
        for d in range(len(t.dataset_names)):
            rows = t.dataset_idx == d
            if rows.any():
                mean_out[d] = t.output_tokens[rows].mean(axis=0)
        mi, ri = cat.cand_model_idx, cat.cand_region_idx
        energy = (
            self._e_fixed[mi][None, :]
            + t.input_tokens[:, None] * self._e_in[mi][None, :]
            + mean_out[t.dataset_idx][:, mi] * self._e_out[mi][None, :]
        ) * math.exp(ENERGY_SIGMA**2 / 2)
        out: FloatArray = energy / 3.6e6 * self.intensity[:, ri] * cat.pue[ri][None, :]
        return out

    def all_outcomes(self) -> Outcomes:
        """Every (request, candidate) pair, as (N, K) arrays (for the oracles and baselines)."""
        n, k = len(self.trace), self.catalog.n_candidates
        ii, kk = np.meshgrid(np.arange(n), np.arange(k), indexing="ij")
        o = self.outcomes(ii.ravel(), kk.ravel())
        return Outcomes(*(np.asarray(a).reshape(n, k) for a in vars(o).values()))
