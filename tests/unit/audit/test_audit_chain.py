"""Dual-chain checks and the summary on decision records made by the real core."""

from __future__ import annotations

import copy
from typing import Any

from support.decision_run import TENANTS, make_run

from streams.audit.chain import check_chains
from streams.audit.reader import DecisionRow
from streams.audit.summary import summarise


def _rows(records: list[dict[str, Any]]) -> list[DecisionRow]:
    # tenant -> partition like the keyed topic; offsets in publication order per partition
    offsets = {t: 0 for t in TENANTS}
    rows = []
    for rec in records:
        t = rec["tenant"]
        rows.append(DecisionRow("decisions", TENANTS.index(t), offsets[t], rec["ts_ms"], t, rec))
        offsets[t] += 1
    return rows


def test_clean_run_has_an_unbroken_chain() -> None:
    run = make_run()
    report = check_chains(_rows(run.records))
    assert report.tenants == 2
    assert report.links_checked == len(run.records) - 2
    assert report.issues == [] and report.duplicates == []
    lams = [r["duals_after"]["lambda"] for r in run.records if r["tenant"] == "acme"]
    assert max(lams) > 0  # the chain is not trivially all zeros


def test_tampered_dual_is_a_break_at_its_offset() -> None:
    records = copy.deepcopy(make_run().records)
    victim = next(
        i for i, r in enumerate(records) if r["tenant"] == "acme" and r["tenant_seq"] == 7
    )
    records[victim]["duals_before"]["lambda"] += 0.5
    rows = _rows(records)
    report = check_chains(rows)
    assert [(b.kind, b.offset, b.partition) for b in report.breaks] == [
        ("lambda", rows[victim].offset, 0)
    ]
    assert report.breaks[0].got == report.breaks[0].expected + 0.5


def test_redelivery_is_a_duplicate_and_a_missing_decision_a_gap() -> None:
    records = make_run().records
    acme = [r for r in records if r["tenant"] == "acme"]
    replayed = [*acme[:5], acme[4], *acme[5:9], *acme[10:]]  # one redelivered, seq 10 lost
    report = check_chains(_rows(replayed))
    assert len(report.duplicates) == 1
    assert [(i.kind, i.expected, i.got) for i in report.issues] == [("seq_gap", 10, 11)]
    assert report.breaks == []


def test_mu_chains_per_dataset() -> None:
    records = copy.deepcopy(make_run().records)
    acme = [r for r in records if r["tenant"] == "acme"]
    # the next acme decision on the same dataset as acme[3] must start from its mu
    ds = acme[3]["dataset"]
    nxt = next(r for r in acme[4:] if r["dataset"] == ds)
    nxt["duals_before"]["mu"] = 123.0
    report = check_chains(_rows(records))
    assert [b.kind for b in report.breaks] == ["mu"]


def test_summary_counts_what_the_core_decided() -> None:
    run = make_run()
    s = summarise(_rows(run.records))
    assert s.decisions == len(run.records)
    assert abs(s.co2_g - sum(r["co2_g"] for r in run.records)) < 1e-9
    assert sum(s.by_model_region.values()) == s.decisions
    assert set(s.tenants) == set(TENANTS)
    acme = s.tenants["acme"]
    assert acme.budget_g == 0.05
    assert acme.decisions_over_budget == sum(
        r["window_spend_g_before"] + r["co2_g"] > r["budget_g"]
        for r in run.records
        if r["tenant"] == "acme"
    )
