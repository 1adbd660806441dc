"""``gar audit`` over a test run's decisions topic: the worker's decisions.v2 records re-derived
from their contexts, the dual and MAC chains checked, and the records in the v1 shape for the
assertions that read every field (intensity reading, estimator snapshot, floor, candidates)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from streams.audit.reader import ReadRange
from streams.audit.report import AuditReport
from streams.audit.run import AuditRequest, run_audit
from streams.config import Settings


def audit(settings: Settings, catalog_path: Path | None = None) -> tuple[AuditReport, list[Any]]:
    req = AuditRequest(
        ReadRange(), catalog_path=catalog_path, outcomes=False, idle_ms=500, full_records=True
    )
    return run_audit(settings, req)


def audited_decisions(settings: Settings, catalog_path: Path | None = None) -> list[dict[str, Any]]:
    """The run's decisions in the v1 shape, after asserting the audit is clean: every
    decision re-derived bit for bit, no dual-chain break, every MAC verified."""
    report, rows = audit(settings, catalog_path)
    assert report.mismatches == [], report.mismatches[:5]
    assert report.chain.breaks == [], report.chain.breaks[:5]
    assert report.rederived == report.rows == len(rows)
    macs = report.macs
    assert macs is not None and macs.issues == [], None if macs is None else macs.issues[:5]
    if settings.decision_mac.key is not None:
        assert macs.verified == macs.signed == len(rows), macs
    return [r.record for r in rows]
