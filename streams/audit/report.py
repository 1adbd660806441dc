"""One audit: re-derivation mismatches, the dual chain, the summary, an optional counterfactual.

Export as JSON (everything) or CSV (one line per decision with its verdict), so an SRE can
filter the mismatching offsets in a spreadsheet.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from streams.audit.chain import ChainReport
from streams.audit.mac_chain import MacReport
from streams.audit.reader import DecisionRow
from streams.audit.summary import Summary


@dataclass(frozen=True)
class Mismatch:
    """A recorded field that re-derivation does not reproduce (or a record it cannot use)."""

    topic: str
    partition: int
    offset: int
    request_id: str | None
    tenant: str | None
    field: str
    recorded: Any
    rederived: Any

    @property
    def where(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"


Difference = tuple[str, Any, Any]  # (field, recorded, re-derived)
Rederive = Callable[[dict[str, Any]], list[Difference]]


@dataclass
class AuditReport:
    topic: str
    rows: int
    rederived: int
    mismatches: list[Mismatch]
    chain: ChainReport
    summary: Summary
    counterfactual: dict[str, Any] | None = None
    unverifiable: list[str] = field(default_factory=list)
    inputs_checked: int = 0
    warnings: list[str] = field(default_factory=list)
    outcomes: dict[str, Any] | None = None
    macs: MacReport | None = None
    contexts: dict[str, Any] | None = None
    rederive_s: float = 0.0
    """CPU-bound time of the re-derivation (rows/s = rederived / this)."""

    @property
    def ok(self) -> bool:
        return (
            not self.mismatches
            and not self.chain.breaks
            and (self.macs is None or not self.macs.issues)
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "ok": self.ok,
            "rows": self.rows,
            "rederived": self.rederived,
            "mismatch_count": len(self.mismatches),
            "mismatches": [asdict(m) | {"where": m.where} for m in self.mismatches],
            "macs": None if self.macs is None else self.macs.to_dict(),
            "contexts": self.contexts,
            "rederive_s": self.rederive_s,
            "chain": {
                "tenants": self.chain.tenants,
                "scopes": self.chain.scopes,
                "links_checked": self.chain.links_checked,
                "duplicates": self.chain.duplicates,
                "breaks": [asdict(i) for i in self.chain.breaks],
                "gaps": [asdict(i) for i in self.chain.issues if not i.is_break],
            },
            "summary": self.summary.to_dict(),
            "outcomes": self.outcomes,
            "counterfactual": self.counterfactual,
            "inputs_checked": self.inputs_checked,
            "warnings": self.warnings,
            "unverifiable": self.unverifiable,
        }


def mismatch_of(row: DecisionRow, name: str, recorded: Any, rederived: Any) -> Mismatch:
    rec = row.record or {}
    rid, tenant = rec.get("request_id"), rec.get("tenant")
    return Mismatch(
        row.topic,
        row.partition,
        row.offset,
        rid if isinstance(rid, str) else None,
        tenant if isinstance(tenant, str) else None,
        name,
        recorded,
        rederived,
    )


CSV_COLUMNS = (
    "topic",
    "partition",
    "offset",
    "request_id",
    "tenant",
    "ts_ms",
    "tenant_seq",
    "policy",
    "policy_version",
    "model",
    "region",
    "reason",
    "co2_g",
    "accuracy_est",
    "latency_p95_ms_est",
    "verdict",
    "problems",
)


def write_json(report: AuditReport, path: Path) -> None:
    path.write_text(json.dumps(report.to_dict(), indent=2, default=str) + "\n")


def write_csv(report: AuditReport, rows: Iterable[DecisionRow], path: Path) -> None:
    problems: dict[tuple[int, int], list[str]] = {}
    for m in report.mismatches:
        problems.setdefault((m.partition, m.offset), []).append(
            f"{m.field}: recorded={m.recorded!r} rederived={m.rederived!r}"
        )
    for issue in report.chain.issues:
        problems.setdefault((issue.partition, issue.offset), []).append(
            f"chain {issue.kind}: expected={issue.expected!r} got={issue.got!r} "
            f"(previous {issue.previous})"
        )
    for mac in [] if report.macs is None else report.macs.issues:
        problems.setdefault((mac.partition, mac.offset), []).append(f"mac {mac.kind}: {mac.detail}")
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(CSV_COLUMNS)
        for row in rows:
            rec = row.record or {}
            found = problems.get((row.partition, row.offset), [])
            verdict = (
                "ok"
                if not found
                else ("gap" if all(p.startswith("chain seq_gap") for p in found) else "mismatch")
            )
            w.writerow(
                [
                    row.topic,
                    row.partition,
                    row.offset,
                    *(rec.get(c, "") for c in CSV_COLUMNS[3:15]),
                    verdict,
                    " | ".join(found),
                ]
            )
