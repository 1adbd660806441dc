"""Typed errors for bad requests/telemetry/readings, and the stale-intensity fallback."""

from __future__ import annotations

from typing import Any

import pytest
from support.core_fixtures import config, context, small_catalog, view

from streams.core import (
    Completion,
    IntensityError,
    IntensityReading,
    IntensityView,
    Request,
    RequestError,
    TelemetryError,
)

GOOD: dict[str, Any] = {
    "request_id": "r1",
    "tenant": "t",
    "dataset": "gsm8k",
    "input_tokens": 10,
    "output_tokens_est": None,
    "client_region": "eu",
    "ts_ms": 5,
}


@pytest.mark.parametrize(
    "change",
    [
        {"input_tokens": -1},
        {"input_tokens": 1.5},
        {"input_tokens": float("nan")},
        {"output_tokens_est": -3},
        {"ts_ms": -1},
        {"ts_ms": True},
        {"request_id": ""},
        {"tenant": ""},
        {"floor": float("nan")},
        {"floor": 1.2},
        {"latency_cap_ms": 0.0},
        {"latency_cap_ms": float("inf")},
        {"allow_models": ["a"]},
        {"dataset": None},
    ],
)
def test_bad_requests_raise_request_error(change: dict[str, Any]) -> None:
    with pytest.raises(RequestError):
        Request(**{**GOOD, **change})


def test_completion_from_dict_accepts_0_1_and_rejects_non_objects() -> None:
    d = {
        "request_id": "r",
        "tenant": "t",
        "model": "m",
        "region": "r",
        "dataset": "d",
        "ts_ms": 1,
        "latency_ms": 5.0,
        "input_tokens": 1,
        "output_tokens": 2,
        "correct": 1,
    }
    assert Completion.from_dict(d).correct is True
    assert Completion.from_dict(Completion.from_dict(d).to_dict()) == Completion.from_dict(d)
    with pytest.raises(TelemetryError):
        Completion.from_dict([1, 2])  # type: ignore[arg-type]
    with pytest.raises(TelemetryError):
        Completion.from_dict({**d, "correct": 2})
    with pytest.raises(RequestError):
        Request.from_dict("nope")  # type: ignore[arg-type]


def test_request_dict_round_trip() -> None:
    r = Request(**{**GOOD, "floor": 0.5, "allow_models": ("small-8b",)})
    assert Request.from_dict(r.to_dict()) == r
    with pytest.raises(RequestError, match="missing field"):
        Request.from_dict({"request_id": "x"})


@pytest.mark.parametrize(
    "change",
    [
        {"latency_ms": -1.0},
        {"latency_ms": float("nan")},
        {"energy_j": float("inf")},
        {"output_tokens": -1},
        {"correct": 1},
        {"ts_ms": -5},
    ],
)
def test_bad_completions_raise_telemetry_error(change: dict[str, Any]) -> None:
    good: dict[str, Any] = {
        "request_id": "r",
        "tenant": "t",
        "model": "small-8b",
        "region": "eu-north",
        "dataset": "gsm8k",
        "ts_ms": 1,
        "latency_ms": 10.0,
        "input_tokens": 1,
        "output_tokens": 1,
    }
    Completion(**good)
    with pytest.raises(TelemetryError):
        Completion(**{**good, **change})


@pytest.mark.parametrize("value", [float("nan"), -1.0, float("inf")])
def test_bad_readings_raise_intensity_error(value: float) -> None:
    with pytest.raises(IntensityError):
        IntensityReading("SE", value, 0)
    with pytest.raises(IntensityError):
        IntensityReading("SE", 1.0, 0, signal_type="weird")


def test_latest_view_ignores_older_readings_and_keeps_history_max() -> None:
    v = IntensityView.from_readings(
        [
            IntensityReading("SE", 50.0, 1_000),
            IntensityReading("SE", 90.0, 500),
            IntensityReading("SE", 30.0, 2_000),
        ]
    )
    latest = v.latest("SE")
    assert latest is not None and latest.intensity_g_per_kwh == 30.0
    assert v.recent_max("SE") == 90.0
    assert IntensityView.from_dict(v.to_dict()).to_dict() == v.to_dict()


def test_stale_and_missing_zones_use_documented_fallback() -> None:
    cfg = config(intensity_max_age_ms=1_000, stale_intensity_g_per_kwh=900.0)
    v = IntensityView.from_readings(
        [
            IntensityReading("SE", 200.0, 0),
            IntensityReading("SE", 40.0, 100),
            IntensityReading("US-MIDA-PJM", 400.0, 100),
        ]
    )  # IN-WE has no reading at all
    ctx = context(cfg, intensity=v)
    fresh = Request(**{**GOOD, "ts_ms": 600})
    old = Request(**{**GOOD, "request_id": "r2", "ts_ms": 5_000})
    est = ctx.estimate([fresh, old])
    cat = small_catalog()
    se, pjm, inwe = (cat.region_index[r] for r in ("eu-north", "us-east", "ap-south"))
    assert not est.intensity_stale[0, se] and est.intensity_g_per_kwh[0, se] == 40.0
    assert est.intensity_stale[1, se] and est.intensity_g_per_kwh[1, se] == 200.0  # zone max
    assert est.intensity_stale[0, inwe] and est.intensity_g_per_kwh[0, inwe] == 900.0  # static
    assert est.intensity_age_ms[1, pjm] == 4_900
    z = ctx.zone_intensity(se, 5_000)
    assert z.stale and z.intensity_g_per_kwh == 200.0


def test_decision_record_marks_stale_intensity() -> None:
    from streams.core import get_policy

    cfg = config(intensity_max_age_ms=1_000)
    ctx = context(cfg, intensity=view(ts_ms=0))
    _, (d,) = get_policy("carbon-greedy").decide_batch(
        ctx, {}, [Request(**{**GOOD, "ts_ms": 10_000})]
    )
    rec = d.to_record()
    assert rec["intensity_stale"] is True and rec["intensity"]["stale"] is True
    assert rec["intensity"]["age_ms"] == 10_000
    assert rec["intensity"]["source_offset"] is not None
