"""The chain of dual updates: each decision's duals_before is the previous one's duals_after.

Per tenant in ``tenant_seq`` order, lambda (carbon) and nu (latency) chain from decision to
decision; mu is per dataset (the record carries the request's dataset's mu), so it chains from
the tenant's previous decision on the same dataset, and so does gar-target's running deficit
(decisions.v2 ``deficit``: [before, after]). A record priced with a scope's pooled mu
(``mu_scope``) chains mu per (scope, dataset) instead, in the scope's decision order: its
decisions partition's offset order, with ``mu_seq`` counting up by one. A redelivered decision
(same request id and the same record) is a duplicate, not a break. A gap in ``tenant_seq`` (a
decision outside the range, or lost) is reported and the chain restarts after it rather than
comparing across it. Duals are ``{"lambda", "mu", "nu"}`` (v1) or ``[lambda, mu, nu]`` (v2).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from streams.audit.reader import DecisionRow

_INDEX = {"lambda": 0, "mu": 1, "nu": 2}


@dataclass(frozen=True)
class ChainIssue:
    tenant: str
    kind: str  # lambda | nu | mu | deficit | mu_seq | seq_repeat | seq_gap
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
    scopes: int = 0

    @property
    def breaks(self) -> list[ChainIssue]:
        return [i for i in self.issues if i.is_break]


def _dual(d: Any, name: str) -> float | None:
    if isinstance(d, dict):
        v = d.get(name)
    elif isinstance(d, list) and len(d) == 3:
        v = d[_INDEX[name]]
    else:
        return None
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _deficit(rec: dict[str, Any], at: int) -> float | None:
    d = rec.get("deficit")
    return float(d[at]) if isinstance(d, list) and len(d) == 2 else None


def _issue(
    tenant: str, kind: str, row: DecisionRow, prev: DecisionRow, expected: Any, got: Any
) -> ChainIssue:
    return ChainIssue(tenant, kind, row.where, prev.where, expected, got, row.partition, row.offset)


def _compare(
    report: ChainReport,
    tenant: str,
    kind: str,
    row: DecisionRow,
    prev: DecisionRow,
    want: Any,
    got: Any,
) -> None:
    if want != got:
        report.issues.append(_issue(tenant, kind, row, prev, want, got))


# Long on purpose: one walk per tenant whose three outcomes (duplicate, gap, link) share the
# previous-decision bookkeeping.
def _tenant_chain(report: ChainReport, tenant: str, trows: list[DecisionRow]) -> None:
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
                    _issue(tenant, "seq_gap", row, prev, p["tenant_seq"] + 1, rec["tenant_seq"])
                )
                prev_by_dataset.clear()
            else:
                report.links_checked += 1
                for name in ("lambda", "nu"):
                    want = _dual(p.get("duals_after"), name)
                    got = _dual(rec.get("duals_before"), name)
                    _compare(report, tenant, name, row, prev, want, got)
        same = prev_by_dataset.get(str(rec.get("dataset")))
        if same is not None and same.record is not None:
            if rec.get("mu_scope") is None:  # pooled mu chains per scope (below)
                want = _dual(same.record.get("duals_after"), "mu")
                _compare(
                    report, tenant, "mu", row, same, want, _dual(rec.get("duals_before"), "mu")
                )
            if "deficit" in rec:
                want = _deficit(same.record, 1)
                _compare(report, tenant, "deficit", row, same, want, _deficit(rec, 0))
        prev = row
        prev_by_dataset[str(rec.get("dataset"))] = row


def _scope_chain(report: ChainReport, scope: str, srows: list[DecisionRow]) -> None:
    """Pooled mu: per dataset in the scope's decision order (its partition's offsets)."""
    srows.sort(key=lambda r: (r.partition, r.offset))
    prev: DecisionRow | None = None
    prev_by_dataset: dict[str, DecisionRow] = {}
    for row in srows:
        rec = row.record
        assert rec is not None
        if prev is not None and prev.record is not None:
            want_seq = int(prev.record.get("mu_seq", 0)) + 1
            if rec.get("mu_seq") != want_seq and rec != prev.record:
                report.issues.append(
                    _issue(f"scope {scope}", "mu_seq", row, prev, want_seq, rec.get("mu_seq"))
                )
        same = prev_by_dataset.get(str(rec.get("dataset")))
        if same is not None and same.record is not None and rec != same.record:
            want = _dual(same.record.get("duals_after"), "mu")
            got = _dual(rec.get("duals_before"), "mu")
            _compare(report, f"scope {scope}", "mu", row, same, want, got)
        prev = row
        prev_by_dataset[str(rec.get("dataset"))] = row


def check_chains(rows: list[DecisionRow]) -> ChainReport:
    report = ChainReport()
    by_tenant: dict[str, list[DecisionRow]] = defaultdict(list)
    by_scope: dict[tuple[str, str], list[DecisionRow]] = defaultdict(list)
    for row in rows:
        rec = row.record
        if rec is not None and isinstance(rec.get("tenant_seq"), int):
            by_tenant[str(rec.get("tenant"))].append(row)
            if rec.get("mu_scope") is not None:
                by_scope[(str(rec.get("policy")), str(rec["mu_scope"]))].append(row)
    report.tenants = len(by_tenant)
    report.scopes = len(by_scope)
    for tenant, trows in by_tenant.items():
        _tenant_chain(report, tenant, trows)
    for (_, scope), srows in by_scope.items():
        _scope_chain(report, scope, srows)
    return report
