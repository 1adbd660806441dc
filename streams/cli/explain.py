"""``gar explain REQUEST_ID``: print one decision's full candidate table (streams/audit/explain)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from streams.config import load_settings


def explain(
    request_id: Annotated[str, typer.Argument(help="The request id of the decision.")],
    tenant: Annotated[
        str | None,
        typer.Option("--tenant", help="Its tenant: read only the tenant's partition (faster)."),
    ] = None,
    offsets: Annotated[
        str | None, typer.Option("--offsets", help="Offset range FROM:TO of the decisions topic.")
    ] = None,
    catalog: Annotated[
        Path | None, typer.Option("--catalog", help="Catalog JSON (default: the worker's).")
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print JSON instead of a table.")
    ] = False,
) -> None:
    """Show every candidate of one decision: estimates, eligibility, latency cap, feasibility
    and the primal-dual score, the choice marked. decisions.v2 records are recomputed from
    their routing context (bit for bit; the verdict is printed)."""
    from aiokafka.partitioner import DefaultPartitioner

    from streams.audit.contexts import ContextIndex, read_contexts
    from streams.audit.explain import as_json, candidate_table, find_decisions
    from streams.audit.reader import ReadRange
    from streams.audit.rederive import Rederiver
    from streams.audit.rederive_rows import full_record, rederive_rows
    from streams.audit.run import AuditRequest, load_catalog, policy_configs

    settings = load_settings()
    parts = None
    if tenant is not None:
        ids = list(range(settings.topics.partitions))
        parts = (DefaultPartitioner()(tenant.encode(), ids, ids),)
    try:
        rng = ReadRange.parse(offsets, parts) if offsets else ReadRange(partitions=parts)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    rows = find_decisions(settings, request_id, rng, progress=not json_out)
    if tenant is not None:
        rows = [r for r in rows if (r.record or {}).get("tenant") == tenant]
    if not rows:
        typer.echo(f"no decision for request {request_id!r}", err=True)
        raise typer.Exit(2)
    cat = load_catalog(settings, catalog)
    configs = policy_configs(settings, AuditRequest(rng))
    contexts = ContextIndex.from_rows(cat, read_contexts(settings, rows))
    done = rederive_rows(rows, Rederiver(cat, configs), contexts)
    requests_topic = settings.topics.name(settings.topics.requests)
    out: list[dict[str, Any]] = []
    for i, row in enumerate(rows):
        rec = row.record or {}
        dec = done.decisions.get(i)
        full = rec if dec is None else full_record(row, dec, requests_topic)
        findings = done.diffs[i] or []
        if "candidates" not in full:
            typer.echo(f"{row.where}: cannot rebuild its candidates: {findings}", err=True)
            raise typer.Exit(1)
        digest = rec.get("context")
        cfg = (
            contexts.inputs[digest].config
            if digest in contexts.inputs
            else configs.get(str(rec.get("policy_version")))
        )
        lines = candidate_table(full, cat, 0.0 if cfg is None else cfg.slo_margin)
        out.append(as_json(row, full, lines, findings))
    if json_out:
        typer.echo(json.dumps(out if len(out) > 1 else out[0], indent=2, default=str))
        return
    for one in out:
        _print(one)


def _print(one: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    rec = one["record"]
    console = Console()
    verdict = (
        "re-derives bit for bit" if one["rederived"] else f"DOES NOT re-derive: {one['findings']}"
    )
    console.print(
        f"[bold]{rec['request_id']}[/] tenant {rec['tenant']} at {one['where']}: "
        f"{rec['model']}@{rec['region']} ({rec['reason']}) by {rec['policy']} "
        f"v{rec['policy_version']}, decisions.v{rec.get('schema_version')}; {verdict}",
        soft_wrap=True,
    )
    console.print(
        f"duals before {rec['duals_before']} after {rec['duals_after']}; floor "
        f"{one['floor']}, latency cap {one['latency_cap_ms']} ms, c_ref {one['carbon_ref_g']} g, "
        f"intensity {one['intensity']}",
        soft_wrap=True,
        markup=False,
    )
    t = Table(title="candidates (score = (1 + λ) co2 / c_ref - μ acc + ν lat / cap)")
    for col in (
        "",
        "model",
        "region",
        "CO2 g",
        "accuracy",
        "p95 ms",
        "eligible",
        "lat ok",
        "feasible",
        "score",
    ):
        t.add_column(col, justify="left" if col in ("", "model", "region") else "right")
    for c in sorted(one["candidates"], key=lambda c: (c["score"] is None, c["score"] or 0.0)):
        t.add_row(
            "*" if c["chosen"] else "",
            c["model"],
            c["region"],
            _num(c["co2_g"]),
            _num(c["accuracy"]),
            _num(c["latency_p95_ms"]),
            "yes" if c["eligible"] else "no",
            {True: "yes", False: "no", None: "-"}[c["latency_ok"]],
            "yes" if c["feasible"] else "no",
            _num(c["score"]),
        )
    console.print(t)


def _num(v: Any) -> str:
    return "-" if v is None else f"{v:.6g}"


def register(app: typer.Typer) -> None:
    app.command("explain")(explain)
