"""Unit tests of the soak's arithmetic (benchmarks/soak_stats.py): accounting by request
position, RSS growth after the warm-up, latency windows and drift."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))

from soak_stats import Sample, account, drift, latency_windows, rss_growth, trajectory


def test_account_counts_each_position_once() -> None:
    # partition 0: offsets 0..4; offset 1 decided twice, offset 3 lost, offset 4 dead-lettered.
    # partition 1: offsets 0..2; offset 2 both decided and dead-lettered.
    acc = account(
        {0: 5, 1: 3},
        {0: np.array([1, 2, 1, 0, 0]), 1: np.array([1, 1, 1])},
        {0: np.array([0, 0, 0, 0, 1]), 1: np.array([0, 0, 1])},
    )
    assert acc.requests == 8
    assert acc.decided == 4  # p0: 0, 2; p1: 0, 1
    assert acc.dead_lettered == 1
    assert acc.lost == 1
    assert acc.decided_twice == 1
    assert acc.decided_and_dead_lettered == 1
    assert not acc.ok


def test_account_clean_run_is_ok_and_missing_arrays_mean_no_outcome() -> None:
    acc = account({0: 3, 1: 2}, {0: np.ones(3, np.int64), 1: np.ones(2, np.int64)}, {})
    assert acc.ok
    assert (acc.decided, acc.lost, acc.decided_twice) == (5, 0, 0)
    lost = account({0: 3}, {}, {})
    assert (lost.lost, lost.ok) == (3, False)


def test_rss_growth_from_the_end_of_the_warm_up_to_the_last_sample() -> None:
    samples = [
        Sample(0.0, 100, 0, 90.0),
        Sample(1.0, 200, 80, 110.0),
        Sample(2.0, 300, 100, 120.0),  # first with the warm-up's 100 outcomes
        Sample(3.0, 1000, 900, 140.0),
        Sample(4.0, 1000, 1000, 132.0),
    ]
    g = rss_growth(samples, warmup_outcomes=100)
    assert (g.warm_mb, g.warm_t_s) == (120.0, 2.0)
    assert (g.end_mb, g.end_t_s, g.max_mb) == (132.0, 4.0, 140.0)
    assert g.growth_pct == pytest.approx(10.0)


def test_rss_growth_needs_the_warm_up_reached() -> None:
    with pytest.raises(ValueError, match="never reached"):
        rss_growth([Sample(0.0, 10, 5, 100.0)], warmup_outcomes=10)
    with pytest.raises(ValueError, match="no samples"):
        rss_growth([], warmup_outcomes=1)


def test_latency_windows_follow_the_request_append_order() -> None:
    # Given out of order: the windows sort by append time, not by the order of the arrays.
    ts = np.array([5, 1, 3, 2, 4, 6, 7], dtype=np.int64)
    lat = np.array([50.0, 10.0, 30.0, 20.0, 40.0, 60.0, 70.0])
    w = latency_windows(ts, lat, size=3)
    assert [x.first for x in w] == [0, 3, 6]
    assert [x.count for x in w] == [3, 3, 1]
    assert w[0].p50_ms == 20.0  # 10, 20, 30
    assert w[1].p50_ms == 50.0  # 40, 50, 60
    assert w[1].max_ms == 60.0
    assert w[2].p99_ms == 70.0
    with pytest.raises(ValueError):
        latency_windows(ts, lat[:3], size=3)


def test_drift_compares_the_first_window_after_the_warm_up_with_the_last() -> None:
    ts = np.arange(10, dtype=np.int64)
    lat = np.array([100.0, 100.0, 5.0, 5.0, 6.0, 6.0, 7.0, 7.0, 9.0, 9.0])
    windows = latency_windows(ts, lat, size=2)
    d = drift(windows, warmup=2)  # the first window (warm-up) is not compared
    assert d["first"]["first"] == 2 and d["first"]["p50_ms"] == 5.0
    assert d["last"]["first"] == 8 and d["last"]["p50_ms"] == 9.0
    assert d["p50_change_ms"] == 4.0
    assert d["p99_change_ms"] == 4.0
    with pytest.raises(ValueError, match="after the warm-up"):
        drift(windows, warmup=10)


def test_trajectory_picks_the_first_sample_of_each_multiple_and_the_last() -> None:
    samples = [
        Sample(0.0, 10, 0, 100.0, 0, 0),
        Sample(1.0, 120, 90, 101.0, 80, 70),
        Sample(2.0, 240, 210, 105.0, 200, 100),  # reaches 100 and 200 at once
        Sample(3.0, 300, 260, 106.0, 250, 120),
        Sample(4.0, 300, 300, 107.0, 300, 300),  # reaches 300; also the last
    ]
    got = trajectory(samples, every=100)
    assert [p["t_s"] for p in got] == [2.0, 4.0]
    assert got[0] == {"t_s": 2.0, "outcomes": 210, "rss_mb": 105.0, "completions_backlog": 100}
    assert got[1]["completions_backlog"] == 0
    assert trajectory(samples[:2], every=100) == [
        {"t_s": 1.0, "outcomes": 90, "rss_mb": 101.0, "completions_backlog": 10}
    ]
    assert trajectory([], every=100) == []
