"""The chain of dual updates: each decision's duals_before is the previous one's duals_after.

Per tenant in ``tenant_seq`` order, lambda (carbon) and nu (latency) chain from decision to
decision; mu is per dataset (the record carries the request's dataset's mu), so it chains from
the tenant's previous decision on the same dataset. A redelivered decision (same request id and
the same record) is a duplicate, not a break. A gap in ``tenant_seq`` (a decision outside the
range, or lost) is reported and the chain restarts after it rather than comparing across it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from streams.audit.reader import DecisionRow


@dataclass(frozen=True)
class ChainIssue:
    tenant: str
    kind: str  # lambda | nu | mu | seq_repeat | seq_gap
    where: str  # topic[partition]@offset of the later decision
    previous: str  # ... of the decision it was compared with
    expected: Any
    got: Any
    partition: int
    offset: int

    @property
    def is_break(self) -> bool:
        return self.kind != "seq_gap"


@dataclass
class ChainReport:
    tenants: int = 0
    links_checked: int = 0
    duplicates: list[str] = field(default_factory=list)
    issues: list[ChainIssue] = field(default_factory=list)

    @property
    def breaks(self) -> list[ChainIssue]:
        return [i for i in self.issues if i.is_break]


def _dual(d: Any, name: str) -> float | None:
    if isinstance(d, dict) and isinstance(d.get(name), int | float):
        return float(d[name])
    return None


def _issue(
    tenant: str, kind: str, row: DecisionRow, prev: DecisionRow, expected: Any, got: Any
) -> ChainIssue:
    return ChainIssue(tenant, kind, row.where, prev.where, expected, got, row.partition, row.offset)


def check_chains(rows: list[DecisionRow]) -> ChainReport:
    report = ChainReport()
    by_tenant: dict[str, list[DecisionRow]] = defaultdict(list)
    for row in rows:
        rec = row.record
        if rec is not None and isinstance(rec.get("tenant_seq"), int):
            by_tenant[str(rec.get("tenant"))].append(row)
    report.tenants = len(by_tenant)
    for tenant, trows in by_tenant.items():
        trows.sort(key=lambda r: (r.record["tenant_seq"], r.partition, r.offset))  # type: ignore[index]
        prev: DecisionRow | None = None
        prev_by_dataset: dict[str, DecisionRow] = {}
        for row in trows:
            rec = row.record
            assert rec is not None
            if prev is not None:
                p = prev.record
                assert p is not None
                if rec["tenant_seq"] == p["tenant_seq"]:
                    if rec == p:
                        report.duplicates.append(row.where)
                    else:
                        report.issues.append(
                            _issue(
                                tenant,
                                "seq_repeat",
                                row,
                                prev,
                                p.get("request_id"),
                                rec.get("request_id"),
                            )
                        )
                    continue
                if rec["tenant_seq"] != p["tenant_seq"] + 1:
                    report.issues.append(
                        _issue(
                            tenant,
                            "seq_gap",
                            row,
                            prev,
                            p["tenant_seq"] + 1,
                            rec["tenant_seq"],
                        )
                    )
                    prev_by_dataset.clear()
                else:
                    report.links_checked += 1
                    for name in ("lambda", "nu"):
                        want = _dual(p.get("duals_after"), name)
                        got = _dual(rec.get("duals_before"), name)
                        if want != got:
                            report.issues.append(_issue(tenant, name, row, prev, want, got))
            same = prev_by_dataset.get(str(rec.get("dataset")))
            if same is not None and same.record is not None:
                want = _dual(same.record.get("duals_after"), "mu")
                got = _dual(rec.get("duals_before"), "mu")
                if want != got:
                    report.issues.append(_issue(tenant, "mu", row, same, want, got))
            prev = row
            prev_by_dataset[str(rec.get("dataset"))] = row
    return report
