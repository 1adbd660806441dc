"""``gar audit`` on decisions.v2 (in memory): every decision re-derives bit for bit from its
context record, the MAC chain verifies, and a forged, reordered or deleted record, a missing or
corrupted context, and a key the audit lacks are each reported at their offset; v1 and v2
records audit side by side."""

from __future__ import annotations

from typing import Any

import orjson
from support.decision_run import MAC_KEY, TENANTS, RunV2, make_run, make_run_v2

from streams.audit.contexts import ContextIndex
from streams.audit.reader import DecisionRow
from streams.audit.rederive import Rederiver
from streams.audit.verify import audit_rows

KEYS = {"k1": MAC_KEY}


def _rows(decisions: list[tuple[str, bytes]]) -> list[DecisionRow]:
    offsets = dict.fromkeys(TENANTS, 0)
    rows = []
    for tenant, value in decisions:
        p = TENANTS.index(tenant)
        rows.append(
            DecisionRow(
                "decisions", p, offsets[tenant], 0, tenant, orjson.loads(value), None, value
            )
        )
        offsets[tenant] += 1
    return rows


def _contexts(run: RunV2, contexts: list[tuple[str, bytes]] | None = None) -> ContextIndex:
    rows = [
        DecisionRow("contexts", 0, i, 0, key, orjson.loads(value), None, value)
        for i, (key, value) in enumerate(run.contexts if contexts is None else contexts)
    ]
    return ContextIndex.from_rows(run.catalog, rows)


def _audit(run: RunV2, rows: list[DecisionRow], **kw: Any) -> Any:
    contexts = kw.pop("contexts", None) or _contexts(run)
    keys = kw.pop("keys", KEYS)
    return audit_rows("decisions", rows, Rederiver(run.catalog, {}), contexts, keys, "requests")


def test_a_v2_run_rederives_bit_for_bit_and_its_chain_verifies() -> None:
    run = make_run_v2()
    rows = _rows(run.decisions)
    report, full = _audit(run, rows)
    assert report.ok, (report.mismatches[:3], report.macs.issues[:3])
    assert report.rederived == len(rows) and report.mismatches == []
    assert report.macs.verified == len(rows) and report.macs.range_heads == 0
    assert report.chain.breaks == [] and report.chain.links_checked == len(rows) - 2
    assert report.contexts == {"records": 6, "usable": 6, "unusable": {}}
    # expanded to the v1 shape: the floor, the budget (and, when asked, every candidate)
    assert report.summary.decisions == len(rows)
    assert all(r.record["floor"] > 0 and r.record["budget_g"] for r in full)
    _, with_table = audit_rows(
        "decisions",
        rows,
        Rederiver(run.catalog, {}),
        _contexts(run),
        KEYS,
        "requests",
        candidates=True,
    )
    assert all(len(r.record["candidates"]["co2_g"]) == run.catalog.n_candidates for r in with_table)
    light = {k for k in full[0].record if k != "candidates"}
    assert light <= set(with_table[0].record)
    assert report.summary.tenants["acme"].budget_g == 0.05


def _value(rows: list[DecisionRow], i: int, change: dict[str, Any]) -> DecisionRow:
    row = rows[i]
    rec = dict(row.record or {})
    rec.update(change)
    raw = orjson.dumps(rec)  # the mac field is kept as it was
    return DecisionRow(row.topic, row.partition, row.offset, 0, row.key, rec, None, raw)


def test_a_forged_record_is_flagged_once_and_the_chain_continues() -> None:
    run = make_run_v2()
    rows = _rows(run.decisions)
    i = next(j for j, r in enumerate(rows) if r.key == "acme" and r.record["tenant_seq"] == 9)
    # the issue's forgery: co2_g and the chosen candidate's estimate changed consistently
    rows[i] = _value(rows, i, {"co2_g": rows[i].record["co2_g"] / 2})
    report, _ = _audit(run, rows)
    assert [(m.kind, m.offset) for m in report.macs.issues] == [("forged", rows[i].offset)]
    assert {m.field for m in report.mismatches if m.offset == rows[i].offset} == {"co2_g"}
    assert not report.ok


def test_reordered_and_deleted_records_are_reported_where_they_are() -> None:
    run = make_run_v2()
    acme = [v for t, v in run.decisions if t == "acme"]
    swapped = [*acme[:4], acme[5], acme[4], *acme[6:10], *acme[11:]]  # 5<->6, seq 11 deleted
    rows = _rows([("acme", v) for v in swapped])
    report, _ = _audit(run, rows)
    kinds = [(m.kind, m.offset) for m in report.macs.issues]
    assert kinds == [("reordered", 5), ("deleted", 10)]
    # the dual chain follows tenant_seq: it sees the deletion as a gap, the swap not at all
    assert [i.kind for i in report.chain.issues] == ["seq_gap"] and not report.ok


def test_missing_and_corrupted_contexts_are_reported_per_decision() -> None:
    run = make_run_v2()
    rows = _rows(run.decisions)
    d0, (d1, v1) = run.contexts[0][0], run.contexts[1]
    corrupted = [(d1, v1.replace(b'"version":"ops-test-v1"', b'"version":"ops-test-v9"'))]
    contexts = _contexts(run, corrupted + run.contexts[2:])
    report, _ = _audit(run, rows, contexts=contexts)
    by_ctx: dict[str, int] = {}
    for m in report.mismatches:
        assert m.field == "context"
        by_ctx[str(m.recorded)] = by_ctx.get(str(m.recorded), 0) + 1
    per_batch = len(rows) // 6
    assert by_ctx == {d0: per_batch, d1: per_batch}
    assert "hash" in report.contexts["unusable"][d1]
    assert report.rederived == len(rows)  # every decision was looked at, none skipped


def test_key_rotation_verifies_with_the_retired_key_and_not_without_it() -> None:
    run = make_run_v2(signers={0: ("k1", MAC_KEY), 3: ("k2", b"the-next-key-0123456789")})
    rows = _rows(run.decisions)
    ring = {"k1": MAC_KEY, "k2": b"the-next-key-0123456789"}
    report, _ = _audit(run, rows, keys=ring)
    assert report.ok and report.macs.verified == len(rows)
    without_old, _ = _audit(run, rows, keys={"k2": ring["k2"]})
    assert {m.kind for m in without_old.macs.issues} == {"unknown_key"}
    unkeyed, _ = _audit(run, rows, keys={})
    assert unkeyed.ok and unkeyed.macs.verified == 0 and unkeyed.warnings


def test_v1_and_v2_records_audit_side_by_side() -> None:
    v1 = make_run()
    run = make_run_v2()
    rows_v1 = [
        DecisionRow("decisions", 0, i, 0, r["tenant"], r, None, orjson.dumps(r))
        for i, r in enumerate(v1.records)
    ]
    rows = rows_v1 + [
        DecisionRow(r.topic, r.partition, 1000 + r.offset, 0, r.key, r.record, None, r.raw)
        for r in _rows(run.decisions)
    ]
    report, _ = audit_rows(
        "decisions",
        rows,
        Rederiver(run.catalog, {v1.config.version: v1.config}),
        _contexts(run),
        KEYS,
        "requests",
    )
    assert report.mismatches == [] and report.rederived == len(rows)
    assert report.macs.verified == len(run.decisions)
