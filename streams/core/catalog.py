"""The catalog: models, regions and deployments (the K candidates), loaded from versioned JSON.

JSON format (``format`` must be ``"gar-catalog/1"``)::

    {
      "format": "gar-catalog/1",
      "version": "2026-11-27.1",
      "models": [
        {"name": "llama-3.1-8b", "params_b": 8.0,
         "energy_per_input_token_j": 0.02, "energy_per_output_token_j": 0.25,
         "prefill_energy_j": 0.0, "ttft_ms": 120.0, "itl_ms": 18.0,
         "default_output_tokens": {"gsm8k": 180.0, "*": 200.0},
         "correctness_prior": {"gsm8k": {"mean": 0.84, "strength": 50.0}},
         "notes": "energy profile: ML.ENERGY Llama-3.1-8B H100 x1"}
      ],
      "regions": [
        {"name": "us-west", "zone": "US-CAL-CISO", "pue": 1.2,
         "rtt_ms": {"us-west": 8.0, "eu-west": 140.0}}
      ],
      "deployments": [{"model": "llama-3.1-8b", "region": "us-west"}]
    }

* ``correctness_prior`` values may also be a bare float (the mean, with ``DEFAULT_PRIOR_STRENGTH``).
* ``default_output_tokens`` may omit ``"*"``; it then defaults to the mean over the given datasets
  (or ``DEFAULT_OUTPUT_TOKENS`` if empty).
* A model's ``"*"`` correctness prior (used for datasets it has no prior for, and for unknown
  datasets) defaults to the mean of its dataset priors with strength ``FALLBACK_PRIOR_STRENGTH``
  (weak, so telemetry quickly overrides it).
* ``deployments`` may be omitted: every model in every region.
* The candidate order is the order of ``deployments``. Decisions never depend on this order
  (ties break by the (model, region) names).
* Client regions are the union of the regions' ``rtt_ms`` keys; every region must give an RTT to
  every client region. An unknown client region gets each region's worst RTT (conservative).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from streams.core.errors import CatalogError

CATALOG_FORMAT = "gar-catalog/1"
ANY_DATASET = "*"
DEFAULT_PRIOR_STRENGTH = 20.0
FALLBACK_PRIOR_STRENGTH = 2.0
DEFAULT_OUTPUT_TOKENS = 256.0

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class BetaPrior:
    """Beta prior as mean and strength (pseudo-observations): alpha = mean*strength."""

    mean: float
    strength: float

    @property
    def alpha(self) -> float:
        return self.mean * self.strength

    @property
    def beta(self) -> float:
        return (1.0 - self.mean) * self.strength


@dataclass(frozen=True, slots=True)
class ModelSpec:
    name: str
    params_b: float
    energy_per_input_token_j: float
    energy_per_output_token_j: float
    ttft_ms: float
    itl_ms: float
    default_output_tokens: Mapping[str, float]
    correctness_prior: Mapping[str, BetaPrior]
    prefill_energy_j: float = 0.0
    notes: str = ""

    def output_tokens_for(self, dataset: str) -> float:
        got = self.default_output_tokens.get(dataset)
        return got if got is not None else self.default_output_tokens[ANY_DATASET]

    def prior_for(self, dataset: str) -> BetaPrior:
        got = self.correctness_prior.get(dataset)
        return got if got is not None else self.correctness_prior[ANY_DATASET]


@dataclass(frozen=True, slots=True)
class RegionSpec:
    name: str
    zone: str
    pue: float
    rtt_ms: Mapping[str, float]


def _num(
    d: Mapping[str, Any],
    key: str,
    where: str,
    *,
    lo: float = 0.0,
    default: float | None = None,
    strict_lo: bool = False,
) -> float:
    if key not in d:
        if default is None:
            raise CatalogError(f"{where}: missing field {key!r}")
        return default
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise CatalogError(f"{where}: {key} must be a number, got {v!r}")
    fv = float(v)
    if not math.isfinite(fv) or fv < lo or (strict_lo and fv <= lo):
        raise CatalogError(f"{where}: {key}={v!r} out of range")
    return fv


def _name(d: Mapping[str, Any], key: str, where: str) -> str:
    v = d.get(key)
    if not isinstance(v, str) or not v:
        raise CatalogError(f"{where}: {key} must be a non-empty string")
    return v


def _parse_prior(v: Any, where: str) -> BetaPrior:
    if isinstance(v, int | float) and not isinstance(v, bool):
        mean, strength = float(v), DEFAULT_PRIOR_STRENGTH
    elif isinstance(v, Mapping):
        mean = _num(v, "mean", where)
        strength = _num(v, "strength", where, default=DEFAULT_PRIOR_STRENGTH, strict_lo=True)
    else:
        raise CatalogError(f"{where}: prior must be a number or {{mean, strength}}")
    if not (0.0 <= mean <= 1.0 and math.isfinite(mean)):
        raise CatalogError(f"{where}: prior mean {mean} not in [0, 1]")
    return BetaPrior(mean, strength)


def _parse_model(d: Any) -> ModelSpec:
    if not isinstance(d, Mapping):
        raise CatalogError("model entries must be objects")
    name = _name(d, "name", "model")
    where = f"model {name!r}"
    raw_priors = d.get("correctness_prior")
    if not isinstance(raw_priors, Mapping) or not raw_priors:
        raise CatalogError(f"{where}: correctness_prior must be a non-empty object")
    priors = {str(k): _parse_prior(v, f"{where} prior {k!r}") for k, v in raw_priors.items()}
    if ANY_DATASET not in priors:
        known = [p.mean for k, p in priors.items()]
        priors[ANY_DATASET] = BetaPrior(sum(known) / len(known), FALLBACK_PRIOR_STRENGTH)
    raw_out = d.get("default_output_tokens", {})
    if not isinstance(raw_out, Mapping):
        raise CatalogError(f"{where}: default_output_tokens must be an object")
    out = {
        str(k): _num(raw_out, k, f"{where} default_output_tokens", strict_lo=True) for k in raw_out
    }
    if ANY_DATASET not in out:
        vals = list(out.values())
        out[ANY_DATASET] = sum(vals) / len(vals) if vals else DEFAULT_OUTPUT_TOKENS
    return ModelSpec(
        name=name,
        params_b=_num(d, "params_b", where, strict_lo=True),
        energy_per_input_token_j=_num(d, "energy_per_input_token_j", where),
        energy_per_output_token_j=_num(d, "energy_per_output_token_j", where, strict_lo=True),
        ttft_ms=_num(d, "ttft_ms", where),
        itl_ms=_num(d, "itl_ms", where),
        default_output_tokens=out,
        correctness_prior=priors,
        prefill_energy_j=_num(d, "prefill_energy_j", where, default=0.0),
        notes=str(d.get("notes", "")),
    )


def _parse_region(d: Any) -> RegionSpec:
    if not isinstance(d, Mapping):
        raise CatalogError("region entries must be objects")
    name = _name(d, "name", "region")
    where = f"region {name!r}"
    pue = _num(d, "pue", where, lo=1.0)
    rtt = d.get("rtt_ms", {})
    if not isinstance(rtt, Mapping):
        raise CatalogError(f"{where}: rtt_ms must be an object")
    return RegionSpec(
        name, _name(d, "zone", where), pue, {str(k): _num(rtt, k, f"{where} rtt_ms") for k in rtt}
    )


@dataclass(frozen=True, eq=False)
class Catalog:
    """Validated catalog with precomputed index arrays (treat as immutable)."""

    version: str
    models: tuple[ModelSpec, ...]
    regions: tuple[RegionSpec, ...]
    deployments: tuple[tuple[str, str], ...]
    # Derived (filled in __post_init__).
    model_index: Mapping[str, int] = field(init=False)
    region_index: Mapping[str, int] = field(init=False)
    datasets: tuple[str, ...] = field(init=False)
    """Known datasets (sorted) followed by ``"*"``, the row used for unknown datasets."""
    dataset_index: Mapping[str, int] = field(init=False)
    client_regions: tuple[str, ...] = field(init=False)
    """Known client regions (sorted); index ``len(client_regions)`` is the unknown-client row."""
    client_index: Mapping[str, int] = field(init=False)
    cand_model_idx: IntArray = field(init=False)
    cand_region_idx: IntArray = field(init=False)
    cand_rank: IntArray = field(init=False)
    """Rank of each candidate in (model name, region name) order: the order-free tie-break."""
    zones: tuple[str, ...] = field(init=False)
    region_zone_idx: IntArray = field(init=False)
    rtt_ms: FloatArray = field(init=False)
    """Shape (C + 1, R): RTT from client region c to region r; last row = worst case."""
    pue: FloatArray = field(init=False)

    def __post_init__(self) -> None:
        if not self.models:
            raise CatalogError("catalog has no models")
        if not self.regions:
            raise CatalogError("catalog has no regions")
        if not self.deployments:
            raise CatalogError("catalog has no deployments (empty candidate set)")
        mi = _index([m.name for m in self.models], "model")
        ri = _index([r.name for r in self.regions], "region")
        seen: set[tuple[str, str]] = set()
        for dm, dr in self.deployments:
            if dm not in mi:
                raise CatalogError(f"deployment references unknown model {dm!r}")
            if dr not in ri:
                raise CatalogError(f"deployment references unknown region {dr!r}")
            if (dm, dr) in seen:
                raise CatalogError(f"duplicate deployment ({dm!r}, {dr!r})")
            seen.add((dm, dr))
        ds = sorted({k for m in self.models for k in m.correctness_prior if k != ANY_DATASET})
        datasets = (*ds, ANY_DATASET)
        clients = sorted({c for r in self.regions for c in r.rtt_ms})
        for r in self.regions:
            missing = [c for c in clients if c not in r.rtt_ms]
            if missing:
                raise CatalogError(f"region {r.name!r} has no rtt_ms for client regions {missing}")
        zones = tuple(sorted({r.zone for r in self.regions}))
        zi = {z: i for i, z in enumerate(zones)}
        rtt = np.zeros((len(clients) + 1, len(self.regions)), dtype=np.float64)
        for j, r in enumerate(self.regions):
            for c, name in enumerate(clients):
                rtt[c, j] = r.rtt_ms[name]
            rtt[len(clients), j] = max(r.rtt_ms.values(), default=0.0)
        names = list(self.deployments)
        order = sorted(range(len(names)), key=lambda k: names[k])
        rank = np.empty(len(names), dtype=np.int64)
        rank[np.asarray(order, dtype=np.int64)] = np.arange(len(names), dtype=np.int64)
        s = object.__setattr__
        s(self, "model_index", mi)
        s(self, "region_index", ri)
        s(self, "datasets", datasets)
        s(self, "dataset_index", {d: i for i, d in enumerate(datasets)})
        s(self, "client_regions", tuple(clients))
        s(self, "client_index", {c: i for i, c in enumerate(clients)})
        s(self, "cand_model_idx", np.asarray([mi[m] for m, _ in names], dtype=np.int64))
        s(self, "cand_region_idx", np.asarray([ri[r] for _, r in names], dtype=np.int64))
        s(self, "cand_rank", rank)
        s(self, "zones", zones)
        s(self, "region_zone_idx", np.asarray([zi[r.zone] for r in self.regions], dtype=np.int64))
        s(self, "rtt_ms", rtt)
        s(self, "pue", np.asarray([r.pue for r in self.regions], dtype=np.float64))
        for a in (
            self.cand_model_idx,
            self.cand_region_idx,
            self.cand_rank,
            self.rtt_ms,
            self.pue,
            self.region_zone_idx,
        ):
            a.flags.writeable = False

    # --- sizes and lookups -------------------------------------------------------------------
    @property
    def n_candidates(self) -> int:
        return len(self.deployments)

    @property
    def model_names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.models)

    @property
    def region_names(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.regions)

    def dataset_idx(self, dataset: str) -> int:
        """Row of ``dataset``; unknown datasets map to the ``"*"`` row (documented fallback)."""
        return self.dataset_index.get(dataset, len(self.datasets) - 1)

    def client_idx(self, client_region: str) -> int:
        """Row of ``client_region``; unknown clients map to the worst-RTT row."""
        return self.client_index.get(client_region, len(self.client_regions))

    def candidate_index(self, model: str, region: str) -> int:
        for k, (m, r) in enumerate(self.deployments):
            if m == model and r == region:
                return k
        raise CatalogError(f"no deployment ({model!r}, {region!r})")

    # --- (de)serialisation ---------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Catalog:
        if not isinstance(d, Mapping):
            raise CatalogError("catalog must be a JSON object")
        fmt = d.get("format", CATALOG_FORMAT)
        if fmt != CATALOG_FORMAT:
            raise CatalogError(f"unsupported catalog format {fmt!r} (want {CATALOG_FORMAT!r})")
        version = d.get("version")
        if not isinstance(version, str) or not version:
            raise CatalogError("catalog version must be a non-empty string")
        raw_models, raw_regions = d.get("models"), d.get("regions")
        if not isinstance(raw_models, Sequence) or not isinstance(raw_regions, Sequence):
            raise CatalogError("catalog needs 'models' and 'regions' lists")
        models = tuple(_parse_model(m) for m in raw_models)
        regions = tuple(_parse_region(r) for r in raw_regions)
        raw_dep = d.get("deployments")
        if raw_dep is None:
            deps = tuple((m.name, r.name) for m in models for r in regions)
        else:
            if not isinstance(raw_dep, Sequence):
                raise CatalogError("deployments must be a list")
            dl: list[tuple[str, str]] = []
            for e in raw_dep:
                if not isinstance(e, Mapping):
                    raise CatalogError("deployment entries must be objects")
                dl.append((_name(e, "model", "deployment"), _name(e, "region", "deployment")))
            deps = tuple(dl)
        return cls(version=version, models=models, regions=regions, deployments=deps)

    @classmethod
    def load(cls, path: str | Path) -> Catalog:
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise CatalogError(f"cannot read catalog {path}: {e}") from e
        return cls.from_dict(raw)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": CATALOG_FORMAT,
            "version": self.version,
            "models": [
                {
                    "name": m.name,
                    "params_b": m.params_b,
                    "energy_per_input_token_j": m.energy_per_input_token_j,
                    "energy_per_output_token_j": m.energy_per_output_token_j,
                    "prefill_energy_j": m.prefill_energy_j,
                    "ttft_ms": m.ttft_ms,
                    "itl_ms": m.itl_ms,
                    "default_output_tokens": dict(m.default_output_tokens),
                    "correctness_prior": {
                        k: {"mean": p.mean, "strength": p.strength}
                        for k, p in m.correctness_prior.items()
                    },
                    "notes": m.notes,
                }
                for m in self.models
            ],
            "regions": [
                {"name": r.name, "zone": r.zone, "pue": r.pue, "rtt_ms": dict(r.rtt_ms)}
                for r in self.regions
            ],
            "deployments": [{"model": m, "region": r} for m, r in self.deployments],
        }

    def dump(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")


def _index(names: Sequence[str], what: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for i, n in enumerate(names):
        if n in out:
            raise CatalogError(f"duplicate {what} name {n!r}")
        out[n] = i
    return out
