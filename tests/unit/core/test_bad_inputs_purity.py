"""Bad inputs at the decision boundary give typed errors or documented fallbacks; importing
the core pulls in no streaming/IO libraries."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from support.core_fixtures import config, context, small_catalog

from streams.core import (
    EstimatorState,
    PolicyConfig,
    PolicyConfigError,
    Request,
    RequestError,
    StateError,
    get_policy,
)


def test_unknown_names_in_overrides_are_rejected_with_reasons() -> None:
    ctx = context()
    cases = {
        "unknown_model:gpt-9": Request(
            "a", "t", "gsm8k", 1, None, "eu", 0, allow_models=("gpt-9",)
        ),
        "unknown_region:moon": Request("b", "t", "gsm8k", 1, None, "eu", 0, deny_regions=("moon",)),
        "no_eligible_candidate": Request(
            "c",
            "t",
            "gsm8k",
            1,
            None,
            "eu",
            0,
            allow_models=("small-8b",),
            deny_models=("small-8b",),
        ),
    }
    ok, bad = ctx.split_valid(list(cases.values()))
    assert ok == []
    assert [why for _, why in bad] == list(cases)
    # decide_batch refuses them with a typed error instead of routing somewhere silently.
    with pytest.raises(RequestError, match="unknown_model"):
        get_policy("gar-pd").decide_batch(ctx, {}, [cases["unknown_model:gpt-9"]])


def test_unknown_dataset_and_client_use_documented_fallbacks() -> None:
    ctx = context()
    r = Request("r", "t", "brand-new-task", 100, None, "antarctica", 0)
    _, (d,) = get_policy("gar-pd").decide_batch(ctx, {}, [r])
    cat = small_catalog()
    star = cat.dataset_idx("*")
    assert d.accuracy == pytest.approx(ctx.acc_score[cat.cand_model_idx[d.candidate], star])
    # Worst RTT row for an unknown client.
    assert d.latency_ms >= ctx.estimate([r]).latency_ms[0].min()
    assert np.isfinite(d.co2_g)


def test_zero_tokens_and_empty_batch() -> None:
    ctx = context()
    states, ds = get_policy("gar-pd").decide_batch(ctx, {}, [])
    assert states == {} and ds == []
    _, (d,) = get_policy("gar-pd").decide_batch(
        ctx, {}, [Request("z", "t", "gsm8k", 0, 0, "eu", 0)]
    )
    assert d.co2_g >= 0


def test_bad_policy_names_and_configs_are_typed() -> None:
    with pytest.raises(PolicyConfigError, match="unknown policy"):
        get_policy("gar-magic")
    for bad in (
        {"mode": "turbo"},
        {"eta_mu": -1.0},
        {"default_floor": 2.0},
        {"budgets_g": {"t": 0.0}},
        {"budget_window_ms": 1_000, "budget_buckets": 7},
        {"latency_slo_ms": float("nan")},
        {"no_such_field": 1},
    ):
        with pytest.raises(PolicyConfigError):
            PolicyConfig.from_dict(bad)
    cfg = config("strict", default_budget_g=2.0)
    assert PolicyConfig.from_dict(cfg.to_dict()) == cfg


def test_estimator_snapshot_for_another_catalog_is_refused() -> None:
    d = small_catalog().to_dict()
    d["deployments"] = d["deployments"][:4]
    from streams.core import Catalog

    other = Catalog.from_dict(d)
    with pytest.raises(StateError):
        context(estimators=EstimatorState(other))


def test_import_is_pure_in_a_fresh_interpreter() -> None:
    code = (
        "import sys, streams.core, streams.core.replay, streams.core.oracle\n"
        "bad = [m for m in ('faust', 'aiokafka', 'influxdb_client', 'asyncio', 'mode') "
        "if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
