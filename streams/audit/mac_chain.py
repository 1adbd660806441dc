"""Verify the decisions' tamper-evident chain (decisions.v2 ``mac``, ``streams.schema.
decision_mac``) with the keys the audit is given.

A tenant's record with ``tenant_seq`` n is chained to its record n - 1: its MAC must verify
over its own bytes and the MAC of that record. Findings, each at the offset of the record:

* ``forged``: it does not verify against its predecessor (altered, or written without the key).
  Its claimed MAC is still what a genuine successor chained to, so one forgery is one finding;
* ``deleted``: its predecessor (n - 1) is missing from the log: it cannot be verified;
* ``reordered``: it is logged after a record with a higher ``tenant_seq`` of the same tenant
  (a tenant's decisions are appended in sequence order);
* ``unsigned`` (no MAC while the audit holds keys), ``unknown_key`` (a key id the audit was not
  given: a rotation without ``retired_keys``), ``malformed`` (no well-formed mac field).

The first record of a tenant in an audited range that does not start its chain (n > 1 and no
n - 1 in the range) has nothing to verify against: counted as a range head, not a finding;
audit from the start of the retained log to cover it. v1 records carry no MAC and are skipped.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

from streams.audit.reader import DecisionRow
from streams.schema.decision_mac import split_mac, verify


@dataclass(frozen=True)
class MacIssue:
    kind: str  # forged | reordered | deleted | unsigned | unknown_key | malformed
    where: str
    tenant: str
    detail: str
    partition: int
    offset: int


@dataclass
class MacReport:
    keys: int = 0
    signed: int = 0
    unsigned: int = 0
    verified: int = 0
    range_heads: int = 0
    issues: list[MacIssue] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {
            "keys": self.keys,
            "signed": self.signed,
            "unsigned": self.unsigned,
            "verified": self.verified,
            "range_heads": self.range_heads,
            "issues": [i.__dict__ for i in self.issues],
        }


def _issue(kind: str, row: DecisionRow, tenant: str, detail: str) -> MacIssue:
    return MacIssue(kind, row.where, tenant, detail, row.partition, row.offset)


# Long on purpose: one walk of a tenant's records in sequence order whose cases (unsigned, range
# head, verified, and the kinds of break) share the predecessor bookkeeping.
def _tenant(
    report: MacReport, keys: Mapping[str, bytes], tenant: str, rows: list[DecisionRow]
) -> None:
    parsed: list[tuple[int, DecisionRow, bytes, str | None]] = []
    top: tuple[int, DecisionRow] | None = None
    for row in rows:  # log order
        split = None if row.raw is None else split_mac(row.raw)
        seq = (row.record or {}).get("tenant_seq")
        if split is None or not isinstance(seq, int):
            report.issues.append(_issue("malformed", row, tenant, "no well-formed mac field"))
            continue
        if top is not None and seq < top[0]:
            report.issues.append(
                _issue(
                    "reordered",
                    row,
                    tenant,
                    f"tenant_seq {seq} logged after tenant_seq {top[0]} ({top[1].where})",
                )
            )
        if top is None or seq > top[0]:
            top = (seq, row)
        parsed.append((seq, row, *split))
    macs_at: dict[int, list[str]] = {}
    for seq, _, _, mac in parsed:
        if mac is not None:
            macs_at.setdefault(seq, []).append(mac)
    first = min((seq for seq, *_ in parsed), default=0)
    for seq, row, body, mac in sorted(parsed, key=lambda p: p[0]):
        if mac is None:
            report.unsigned += 1
            if keys:
                report.issues.append(_issue("unsigned", row, tenant, "no MAC (mac: null)"))
            continue
        report.signed += 1
        if not keys:
            continue
        before = [""] if seq == 1 else macs_at.get(seq - 1)
        if before is None:
            if seq == first:  # the range starts inside the tenant's chain
                report.range_heads += 1
            else:
                report.issues.append(
                    _issue("deleted", row, tenant, f"tenant_seq {seq - 1} is missing before it")
                )
            continue
        why = "MAC does not match"
        for prev in before:
            why = verify(keys, body, mac, prev) or ""
            if not why:
                break
        if not why:
            report.verified += 1
        elif why.startswith("no key"):
            report.issues.append(_issue("unknown_key", row, tenant, why))
        else:
            report.issues.append(
                _issue("forged", row, tenant, f"MAC does not verify against tenant_seq {seq - 1}")
            )


def check_macs(rows: list[DecisionRow], keys: Mapping[str, bytes]) -> MacReport:
    """Verify every v2 record's MAC in its tenant's chain (``keys``: key id -> key)."""
    report = MacReport(keys=len(keys))
    by_tenant: dict[str, list[DecisionRow]] = defaultdict(list)
    for row in rows:
        rec = row.record
        if rec is not None and rec.get("schema_version") == 2:
            by_tenant[str(rec.get("tenant"))].append(row)
    for tenant, trows in by_tenant.items():
        trows.sort(key=lambda r: (r.partition, r.offset))
        _tenant(report, keys, tenant, trows)
    return report
