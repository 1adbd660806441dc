"""The serving-fleet simulator's model of one served request (pure; no I/O).

For a dispatch of request ``r`` to model ``m`` in region ``g``:

* question: the real question of ``r``'s dataset picked by a hash of the request id (the same
  question whichever model serves it), drawn from the shared correctness data;
* output tokens: that model's real answer length on that question; else the request's
  estimate, else the catalog default, times lognormal noise;
* correctness: that model's recorded answer on that question; models without real data for
  the dataset draw Bernoulli(catalog prior mean);
* serving latency (at the region, no client RTT, as the core's ``Completion`` expects) =
  TTFT x exp(0.3 z1) + output tokens x ITL x exp(0.15 z2) (TTFT/ITL from the catalog);
* energy = (prefill + input x J/in + output x J/out) x exp(0.1 z3), the catalog's ML.ENERGY
  per-token figures;
* completion event time = request event time + serving latency.

All noise is seeded by (request id, model, region), so a re-delivered dispatch yields the same
completion (telemetry is idempotent under at-least-once delivery).
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from streams.core.catalog import Catalog
from streams.core.inputs import Completion
from streams.data.correctness import CorrectnessData
from streams.eval.world import ENERGY_SIGMA, TTFT_SIGMA
from streams.ingress.dispatch import DispatchOrder

ITL_SIGMA = 0.15
OUTPUT_TOKENS_SIGMA = 0.3


def _hash64(*parts: str) -> int:
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


@dataclass(frozen=True)
class Truth:
    correct: bool | None  # None: no ground truth and no prior
    output_tokens: int
    from_data: bool


class FleetModel:
    def __init__(self, catalog: Catalog, data: CorrectnessData | None = None) -> None:
        self.catalog = catalog
        self.data = data
        self._rows: dict[str, npt.NDArray[np.int64]] = {}
        self._col: dict[str, int] = {}
        self._tokens: npt.NDArray[np.float64] | None = None
        if data is not None:
            from streams.data.catalog_builder import filled_output_tokens

            self._tokens = filled_output_tokens(data)
            for d, name in enumerate(data.datasets):
                self._rows[name] = np.flatnonzero(data.dataset_idx == d).astype(np.int64)
            self._col = {m: i for i, m in enumerate(data.models)}

    def question(self, request_id: str, dataset: str) -> int | None:
        """Row of the real question this request stands for (None: dataset not in the data)."""
        rows = self._rows.get(dataset)
        if rows is None or rows.size == 0:
            return None
        return int(rows[_hash64(request_id) % rows.size])

    def truth(self, order: DispatchOrder, rng: random.Random) -> Truth:
        spec = self.catalog.models[self.catalog.model_index[order.model]]
        q = self.question(order.request_id, order.dataset)
        col = self._col.get(order.model)
        if q is not None and col is not None and self.data is not None:
            recorded = int(self.data.correct[q, col])
            if recorded >= 0 and self._tokens is not None:
                tokens = max(1, round(float(self._tokens[q, col])))
                return Truth(bool(recorded), tokens, True)
        base = order.output_tokens_est or spec.output_tokens_for(order.dataset)
        tokens = max(1, round(base * math.exp(OUTPUT_TOKENS_SIGMA * rng.gauss(0.0, 1.0))))
        prior = spec.prior_for(order.dataset)
        return Truth(rng.random() < prior.mean, tokens, False)

    def complete(self, order: DispatchOrder) -> Completion:
        rng = random.Random(_hash64(order.request_id, order.model, order.region))
        spec = self.catalog.models[self.catalog.model_index[order.model]]
        t = self.truth(order, rng)
        z1, z2, z3 = rng.gauss(0.0, 1.0), rng.gauss(0.0, 1.0), rng.gauss(0.0, 1.0)
        serving_ms = spec.ttft_ms * math.exp(TTFT_SIGMA * z1) + t.output_tokens * spec.itl_ms * (
            math.exp(ITL_SIGMA * z2)
        )
        energy_j = (
            spec.prefill_energy_j
            + order.input_tokens * spec.energy_per_input_token_j
            + t.output_tokens * spec.energy_per_output_token_j
        ) * math.exp(ENERGY_SIGMA * z3)
        return Completion(
            request_id=order.request_id,
            tenant=order.tenant,
            model=order.model,
            region=order.region,
            dataset=order.dataset,
            ts_ms=order.ts_ms + round(serving_ms),
            latency_ms=round(serving_ms, 3),
            input_tokens=order.input_tokens,
            output_tokens=t.output_tokens,
            energy_j=round(energy_j, 6),
            correct=t.correct,
        )
