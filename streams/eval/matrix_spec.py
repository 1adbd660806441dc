"""The scenario matrix's spec file (TOML): shared defaults plus a list of named scenarios.

```toml
[defaults]                       # every key is optional; a scenario overrides any of them
zones = ["US-MIDA-PJM", "GB"]    # or "all": every zone with a file in the carbon directory
seed = 0
start = "2023-06-01"             # UTC date/time; or day_of_year = 152 (1 = the data's first day)
days = 7
floor = 0.95                     # floor level alpha; or floors = { gsm8k = 0.9, ... }
models = "default"               # "gsm8k" | "routerbench" | "default" | "all-open" | [names]
requests = 10000
tenants = 3                      # Zipf shares (tenant_skew); omitted: tenant-a/b/c 50/30/20 %
tenant_skew = 1.0
dataset_shares = { mbpp = 0.05 } # omitted: uniform over questions
budget_fraction = 0.5            # 0: no budgets
slo_ms = 12000
mode = "balanced"
signal = "direct"
policy_config = {}               # PolicyConfig overrides (defaults, then the scenario's)
policies = ["gar-pd"]            # defaults only (the CLI's --policies wins)
data_dir = "/path/to/shared/data"  # defaults only; else the settings' shared data directory

[[scenario]]
name = "apac-floor90"            # unique; [A-Za-z0-9._-]
description = "APAC zones at floor level 0.90"
zones = ["SG", "JP-TK", "KR", "AU-NSW"]
floor = 0.90
```

The data directory holds ``correctness/*.csv*``, ``energy/mlenergy-v3-llm.csv`` and
``carbon/electricitymaps-hourly-2023/`` (the shared data's layout).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from streams.core import PolicyConfig, PolicyConfigError, policy_names
from streams.eval.runner import HOME_SUFFIX, ORACLE_NAMES
from streams.eval.scenario import ALL_OPEN, MODEL_POOLS, ScenarioSettings

RESOURCES = Path(__file__).resolve().parent.parent / "resources"
PACKAGED_SPECS = {"default": "eval-matrix.toml", "smoke": "eval-matrix-smoke.toml"}
DEFAULT_POLICIES = ("gar-pd",)
CARBON_SUBDIR = Path("carbon/electricitymaps-hourly-2023")
ENERGY_FILE = Path("energy/mlenergy-v3-llm.csv")
NAME_RE = re.compile(r"^[A-Za-z0-9._-]+$")
ALL_OPEN_ESTIMATE = 20
"""Models in an ``all-open`` pool, for scheduling only (23 on the shared data)."""

SCENARIO_KEYS = frozenset(
    {
        "zones",
        "seed",
        "start",
        "day_of_year",
        "days",
        "floor",
        "floors",
        "models",
        "requests",
        "tenants",
        "tenant_skew",
        "dataset_shares",
        "budget_fraction",
        "slo_ms",
        "mode",
        "signal",
        "policy_config",
    }
)
DEFAULTS_ONLY = frozenset({"policies", "data_dir"})
SCENARIO_ONLY = frozenset({"name", "description"})


class SpecError(ValueError):
    """The spec file is malformed (message names the scenario and the key)."""


@dataclass(frozen=True)
class MatrixScenario:
    name: str
    description: str
    settings: ScenarioSettings
    values: dict[str, Any]
    """The merged spec values (defaults + scenario), echoed into the reports."""

    @property
    def size(self) -> int:
        """A cost estimate for scheduling (largest first): requests x zones x pool size."""
        s = self.settings
        pool = s.models[0] if len(s.models) == 1 else ""
        n_models = ALL_OPEN_ESTIMATE if pool == ALL_OPEN else len(MODEL_POOLS.get(pool, s.models))
        return s.n_requests * len(s.zones) * n_models


@dataclass(frozen=True)
class MatrixSpec:
    path: Path
    policies: tuple[str, ...]
    scenarios: tuple[MatrixScenario, ...]
    defaults: dict[str, Any] = field(default_factory=dict)
    policy_config: dict[str, Any] = field(default_factory=dict)
    """Overrides for the evaluated policies of every scenario (the command line's)."""


def resolve_spec_path(spec: str | Path) -> Path:
    """A path, or the name of a packaged spec (``default``, ``smoke``)."""
    if isinstance(spec, str) and spec in PACKAGED_SPECS:
        return RESOURCES / PACKAGED_SPECS[spec]
    return Path(spec)


def _check_type(where: str, key: str, value: Any, types: tuple[type, ...]) -> None:
    # bool is an int in Python; a spec's true/false is never a number here.
    if isinstance(value, bool) or not isinstance(value, types):
        names = " or ".join(t.__name__ for t in types)
        raise SpecError(f"{where}: {key} must be {names}, got {value!r}")


def _float_table(where: str, key: str, value: Any) -> dict[str, float]:
    _check_type(where, key, value, (dict,))
    out: dict[str, float] = {}
    for k, v in value.items():
        _check_type(where, f"{key}.{k}", v, (int, float))
        out[str(k)] = float(v)
    return out


def _start_ms(where: str, text: Any) -> int:
    _check_type(where, "start", text, (str,))
    try:
        return int(np.datetime64(str(text).replace("Z", ""), "ms").astype(np.int64))
    except ValueError:
        raise SpecError(f"{where}: start must be an ISO date/time (UTC), got {text!r}") from None


def _zones(where: str, value: Any, carbon_dir: Path) -> tuple[str, ...]:
    if value == "all":
        found = sorted(p.name.split(".")[0] for p in carbon_dir.glob("*.csv*"))
        if not found:
            raise SpecError(f"{where}: zones = 'all' but {carbon_dir} has no zone files")
        return tuple(found)
    _check_type(where, "zones", value, (list,))
    if not value or not all(isinstance(z, str) for z in value):
        raise SpecError(f"{where}: zones must be a non-empty list of zone names or 'all'")
    return tuple(value)


def _models(where: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        if value != ALL_OPEN and value not in MODEL_POOLS:
            pools = sorted([*MODEL_POOLS, ALL_OPEN])
            raise SpecError(f"{where}: models must be one of {pools} or a list, got {value!r}")
        return (value,)
    _check_type(where, "models", value, (list,))
    if not value or not all(isinstance(m, str) for m in value):
        raise SpecError(f"{where}: models must be a pool name or a non-empty list of names")
    return tuple(value)


def scenario_settings(where: str, values: Mapping[str, Any], data_dir: Path) -> ScenarioSettings:
    """ScenarioSettings from merged spec values."""
    v = dict(values)
    carbon_dir = data_dir / CARBON_SUBDIR
    kw: dict[str, Any] = {
        "correctness": tuple(sorted((data_dir / "correctness").glob("*.csv*"))),
        "energy": data_dir / ENERGY_FILE,
        "carbon_dir": carbon_dir,
    }
    if "zones" in v:
        kw["zones"] = _zones(where, v["zones"], carbon_dir)
    if "start" in v and "day_of_year" in v:
        raise SpecError(f"{where}: give start or day_of_year, not both")
    if "start" in v:
        kw["start_ms"] = _start_ms(where, v["start"])
    if "day_of_year" in v:
        _check_type(where, "day_of_year", v["day_of_year"], (int,))
        if v["day_of_year"] < 1:
            raise SpecError(f"{where}: day_of_year starts at 1")
        kw["start_day"] = float(v["day_of_year"] - 1)
    for key, target, types in (
        ("seed", "seed", (int,)),
        ("days", "days", (int, float)),
        ("floor", "floor_alpha", (int, float)),
        ("requests", "n_requests", (int,)),
        ("tenants", "tenants", (int,)),
        ("tenant_skew", "tenant_skew", (int, float)),
        ("slo_ms", "slo_ms", (int, float)),
        ("mode", "mode", (str,)),
        ("signal", "signal", (str,)),
    ):
        if key in v:
            _check_type(where, key, v[key], types)
            kw[target] = float(v[key]) if float in types else v[key]
    if "requests" in v and v["requests"] <= 0:
        raise SpecError(f"{where}: requests must be > 0")
    if "days" in v and v["days"] <= 0:
        raise SpecError(f"{where}: days must be > 0")
    if "signal" in v and v["signal"] not in ("direct", "lca"):
        raise SpecError(f"{where}: signal must be direct or lca")
    if "floors" in v:
        kw["floors"] = _float_table(where, "floors", v["floors"])
    if "models" in v:
        kw["models"] = _models(where, v["models"])
    if "dataset_shares" in v:
        kw["dataset_shares"] = _float_table(where, "dataset_shares", v["dataset_shares"])
    if "budget_fraction" in v:
        _check_type(where, "budget_fraction", v["budget_fraction"], (int, float))
        kw["budget_fraction"] = float(v["budget_fraction"]) or None
    overrides: dict[str, Any] = {}
    if "policy_config" in v:
        _check_type(where, "policy_config", v["policy_config"], (dict,))
        overrides.update(v["policy_config"])
    kw["policy_overrides"] = overrides
    if not kw["correctness"]:
        raise SpecError(f"{where}: no correctness files in {data_dir / 'correctness'}")
    return ScenarioSettings(**kw)


def _check_policies(where: str, policies: Sequence[str]) -> None:
    known = set(policy_names())
    bad = [p for p in policies if p in ORACLE_NAMES or p.removesuffix(HOME_SUFFIX) not in known]
    if bad:
        raise SpecError(f"{where}: unknown online policy {bad}; known: {sorted(known)}")


def _check_config(where: str, s: ScenarioSettings, cli: Mapping[str, Any]) -> None:
    """The preset with the spec's and the command line's overrides must be a valid config."""
    try:
        PolicyConfig.preset(s.mode, **{**s.policy_overrides, **cli})  # type: ignore[arg-type]
    except (PolicyConfigError, TypeError, ValueError) as exc:
        raise SpecError(f"{where}: bad mode or policy config: {exc}") from None


def _unknown(where: str, table: Mapping[str, Any], allowed: frozenset[str]) -> None:
    extra = sorted(set(table) - allowed)
    if extra:
        raise SpecError(f"{where}: unknown key(s) {extra}; known: {sorted(allowed)}")


def load_spec(
    spec: str | Path,
    *,
    data_dir: Path | None = None,
    policies: Sequence[str] | None = None,
    policy_config: Mapping[str, Any] | None = None,
    only: Sequence[str] | None = None,
) -> MatrixSpec:
    """Parse and validate a spec. ``data_dir`` and ``policies`` come from the command line and
    win over the file; ``policy_config`` (the command line's overrides) applies to the
    evaluated policies of every scenario, over the scenario's own config (accuracy-greedy, the
    reference of target 1, keeps the scenario's config); ``only`` keeps the named scenarios
    (unknown names are an error)."""
    path = resolve_spec_path(spec)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SpecError(f"{path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: {exc}") from None
    _unknown(str(path), raw, frozenset({"defaults", "scenario"}))
    defaults = raw.get("defaults", {})
    _check_type(f"{path} [defaults]", "defaults", defaults, (dict,))
    _unknown(f"{path} [defaults]", defaults, SCENARIO_KEYS | DEFAULTS_ONLY)
    if data_dir is None:
        if "data_dir" in defaults:
            data_dir = (path.parent / str(defaults["data_dir"])).resolve()
        else:
            from streams.config import load_settings

            data_dir = load_settings().data.dir
    pols = tuple(policies or defaults.get("policies") or DEFAULT_POLICIES)
    _check_policies(str(path), pols)
    items = raw.get("scenario", [])
    if not isinstance(items, list) or not items:
        raise SpecError(f"{path}: no [[scenario]] tables")
    shared = {k: v for k, v in defaults.items() if k in SCENARIO_KEYS}
    scenarios: list[MatrixScenario] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        where = f"{path} scenario {i + 1}"
        _check_type(where, "scenario", item, (dict,))
        name = item.get("name")
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise SpecError(f"{where}: name must match [A-Za-z0-9._-]+, got {name!r}")
        where = f"{path} scenario {name!r}"
        if name in seen:
            raise SpecError(f"{where}: duplicate name")
        seen.add(name)
        _unknown(where, item, SCENARIO_KEYS | SCENARIO_ONLY)
        values = {**shared, **{k: v for k, v in item.items() if k in SCENARIO_KEYS}}
        if "policy_config" in shared and "policy_config" in item:
            values["policy_config"] = {**shared["policy_config"], **item["policy_config"]}
        settings = scenario_settings(where, values, data_dir)
        _check_config(where, settings, policy_config or {})
        description = item.get("description", "")
        _check_type(where, "description", description, (str,))
        scenarios.append(MatrixScenario(name, description, settings, values))
    if only:
        unknown = sorted(set(only) - seen)
        if unknown:
            raise SpecError(f"{path}: --only names unknown scenario(s) {unknown}")
        scenarios = [s for s in scenarios if s.name in set(only)]
    return MatrixSpec(path, pols, tuple(scenarios), dict(defaults), dict(policy_config or {}))
