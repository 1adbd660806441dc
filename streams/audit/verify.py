"""One pass over a range of decision records: re-derive (both versions), expand v2 records,
check the dual chains and the MAC chain, summarise."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import replace

from streams.audit.chain import check_chains
from streams.audit.contexts import ContextIndex
from streams.audit.mac_chain import check_macs
from streams.audit.reader import DecisionRow
from streams.audit.rederive import Rederiver
from streams.audit.rederive_rows import full_record, rederive_rows
from streams.audit.report import AuditReport, Mismatch, mismatch_of
from streams.audit.summary import summarise


def audit_rows(
    topic: str,
    rows: list[DecisionRow],
    v1: Rederiver | None,
    contexts: ContextIndex | None = None,
    keys: Mapping[str, bytes] | None = None,
    requests_topic: str = "",
    on_progress: Callable[[int], None] | None = None,
    candidates: bool = False,
) -> tuple[AuditReport, list[DecisionRow]]:
    """The report, and the rows with every re-derived v2 record expanded to the v1 shape (what
    the outcomes, the counterfactual and the CSV read; with ``candidates``, every candidate's
    estimates too). ``v1`` None: no re-derivation."""
    mismatches: list[Mismatch] = [
        mismatch_of(row, "record", row.error, None) for row in rows if row.record is None
    ]
    full_rows = rows
    rederived = 0
    t0 = time.process_time()
    if v1 is not None:
        done = rederive_rows(rows, v1, contexts, on_progress)
        for row, diffs in zip(rows, done.diffs, strict=True):
            if diffs is not None:
                rederived += 1
                mismatches.extend(mismatch_of(row, f, a, b) for f, a, b in diffs)
        if done.decisions:
            full_rows = [
                replace(row, record=full_record(row, done.decisions[i], requests_topic, candidates))
                if i in done.decisions
                else row
                for i, row in enumerate(rows)
            ]
    rederive_s = time.process_time() - t0
    has_v2 = any(r.record is not None and r.record.get("schema_version") == 2 for r in rows)
    report = AuditReport(
        topic,
        len(rows),
        rederived,
        mismatches,
        check_chains(rows),
        summarise(full_rows),
        macs=check_macs(rows, keys or {}) if has_v2 else None,
        rederive_s=rederive_s,
    )
    if contexts is not None and has_v2:
        report.contexts = {
            "records": contexts.records,
            "usable": len(contexts.inputs),
            "unusable": dict(contexts.bad),
        }
    if has_v2 and not keys:
        report.warnings.append(
            "no decision MAC key given (GAR_DECISION_MAC__KEY / RETIRED_KEYS): the records' "
            "tamper-evident chain was not verified"
        )
    return report, full_rows
