"""``gar policy show|set|validate|history`` and ``gar tenants show`` (streams/orchestration/
operate.py): the policy and a tenant's state as the workers hold them."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from streams.cli.errors import CliError
from streams.config import load_settings

policy_app = typer.Typer(no_args_is_help=True, help="Show, change and validate the policy.")
tenants_app = typer.Typer(no_args_is_help=True, help="What the router holds about a tenant.")
console = Console()

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _fmt_ms(ts_ms: int | None) -> str:
    if ts_ms is None or ts_ms < 0:
        return "-"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts_ms / 1000))


def _load_file(path: Path) -> dict[str, Any]:
    from streams.orchestration.operate import PolicyFileError, read_policy_file

    try:
        return read_policy_file(path)
    except PolicyFileError as exc:
        raise CliError(str(exc), "fix the file; `gar policy validate FILE` checks it") from None


def _validated(path: Path, record: dict[str, Any]) -> Any:
    from streams.orchestration.operate import PolicyFileError, validate_policy

    try:
        return validate_policy(record)
    except PolicyFileError as exc:
        raise CliError(f"{path}: {exc}", "the workers would reject it; fix the file") from None


def _print_config(cfg: Any, title: str) -> None:
    t = Table(title=title, show_header=False)
    t.add_column("field")
    t.add_column("value", overflow="fold")
    t.add_row("version", cfg.version)
    t.add_row("mode", cfg.mode)
    t.add_row("floors", ", ".join(f"{d}={f:g}" for d, f in sorted(cfg.floors.items())) or "-")
    t.add_row("default floor", f"{cfg.default_floor:g}")
    alpha = cfg.adaptive_floor_alpha
    t.add_row("adaptive floor alpha", "off" if alpha is None else f"{alpha:g}")
    t.add_row("p95 latency SLO (ms)", f"{cfg.latency_slo_ms:g}")
    budgets = ", ".join(f"{k}={v:g}" for k, v in sorted(cfg.budgets_g.items()))
    t.add_row("budgets (g per window)", budgets or "-")
    t.add_row(
        "default budget (g)", "-" if cfg.default_budget_g is None else f"{cfg.default_budget_g:g}"
    )
    t.add_row("budget window", f"{cfg.budget_window_ms / 60_000:g} min")
    for tenant, o in sorted(cfg.tenant_overrides.items()):
        parts = [f"v{o.version}"]
        parts += [f"mode {o.mode}"] if o.mode else []
        parts += [f"floors {dict(o.floors)}"] if o.floors else []
        parts += [f"default floor {o.default_floor:g}"] if o.default_floor is not None else []
        parts += [f"SLO {o.latency_slo_ms:g} ms"] if o.latency_slo_ms is not None else []
        parts += [f"budget {o.budget_g:g} g"] if o.budget_g is not None else []
        t.add_row(f"tenant {tenant}", ", ".join(parts))
    console.print(t)


@policy_app.command("show")
def policy_show(as_json: JsonFlag = False) -> None:
    """The policy the workers route with (their policy changelog), with per-tenant overrides."""
    from streams.orchestration.operate import policy_in_force

    settings = load_settings()
    p = policy_in_force(settings)
    if as_json:
        typer.echo(json.dumps(p.to_dict(), indent=2))
        return
    where = settings.topics.name(settings.topics.policy)
    if p.published:
        title = (
            f"policy {p.policy_name} in force (offset {p.source_offset} of {where}, "
            f"issued {_fmt_ms(p.issued_at_ms)})"
        )
    else:
        title = f"no policy on {where}: the workers' default ({p.policy_name})"
    _print_config(p.config, title)


@policy_app.command("validate")
def policy_validate(
    file: Annotated[Path, typer.Argument(help="A policy.v1 record or just its config (JSON).")],
) -> None:
    """Check a policy file exactly as the workers will (schema policy.v1); exit 2 if not."""
    record = _load_file(file)
    if "version" not in record["config"]:
        record = {**record, "config": {**record["config"], "version": "unset"}}
    parsed = _validated(file, record)
    n = len(parsed.config.tenant_overrides)
    typer.echo(f"{file}: valid policy.v1 ({parsed.config.mode}, {n} tenant overrides)")


@policy_app.command("set")
def policy_set(
    file: Annotated[Path, typer.Argument(help="A policy.v1 record or just its config (JSON).")],
    merge: Annotated[
        bool,
        typer.Option("--merge", help="Lay the file's fields over the policy in force."),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Validate and print the record; publish nothing.")
    ] = False,
    wait_s: Annotated[
        float, typer.Option("--wait", help="Seconds to wait for a worker to apply it.")
    ] = 15.0,
) -> None:
    """Publish a policy (the whole config; --merge: only the fields given). A file without
    config.version gets one from the clock."""
    from streams.orchestration.operate import (
        merged_record,
        policy_in_force,
        publish_policy,
        wait_applied,
        with_version,
    )

    settings = load_settings()
    record = _load_file(file)
    if merge:
        record = merged_record(policy_in_force(settings), record)
    record = with_version(record, int(time.time() * 1000))
    parsed = _validated(file, record)
    if dry_run:
        typer.echo(json.dumps(record, indent=2))
        return
    offset = publish_policy(settings, record)
    topic = settings.topics.name(settings.topics.policy)
    typer.echo(f"published version {parsed.config.version} at offset {offset} of {topic}")
    if wait_s <= 0:
        return
    if wait_applied(settings, offset, wait_s):
        typer.echo("applied by the workers")
    else:
        typer.echo(f"not applied within {wait_s:g} s: is a worker running (gar worker)?")


@policy_app.command("history")
def policy_history_cmd(
    last: Annotated[int, typer.Option("--last", min=1, help="Only the newest N records.")] = 20,
    as_json: JsonFlag = False,
) -> None:
    """Every policy record still on the policy topic, checked as the workers check it, with the
    fields each changed."""
    from dataclasses import asdict

    from streams.orchestration.operate import policy_history

    entries = policy_history(load_settings())[-last:]
    if as_json:
        typer.echo(json.dumps([asdict(e) for e in entries], indent=2))
        return
    t = Table(title="policy history (oldest first)")
    for col in ("offset", "time", "version", "policy", "mode", "status", "changed"):
        t.add_column(col, overflow="fold")
    for e in entries:
        t.add_row(
            str(e.offset),
            _fmt_ms(e.timestamp_ms),
            e.version or "-",
            e.policy_name or "-",
            e.mode or "-",
            "valid" if e.accepted else f"rejected: {e.problem}",
            ", ".join(e.changed) or "-",
        )
    console.print(t)


@tenants_app.command("show")
def tenants_show(
    tenant: Annotated[str, typer.Argument(help="The tenant (the requests' tenant field).")],
    last: Annotated[int, typer.Option("--last", min=0, help="Last decisions to show.")] = 5,
    scan: Annotated[
        int,
        typer.Option("--scan", min=1, help="Newest records of its decisions partition to search."),
    ] = 5000,
    as_json: JsonFlag = False,
) -> None:
    """A tenant's duals, budget window and spend, floors, SLO and mode in force, and its last
    decisions (from the workers' changelogs and the decisions topic)."""
    from streams.orchestration.operate import tenant_view

    settings = load_settings()
    view = tenant_view(settings, tenant, last, scan).to_dict()
    if as_json:
        typer.echo(json.dumps(view, indent=2))
        return
    t = Table(title=f"tenant {tenant} (partition {view['partition']})", show_header=False)
    t.add_column("field")
    t.add_column("value", overflow="fold")
    t.add_row("policy version", f"{view['policy_version']}" + (" (override)" * view["override"]))
    t.add_row("mode", view["mode"])
    t.add_row("p95 latency SLO (ms)", f"{view['latency_slo_ms']:g}")
    floors = ", ".join(f"{d}={f:g}" for d, f in sorted(view["floors"].items()))
    t.add_row("floors (explicit)", floors or "- (adaptive only)")
    budget = view["budget_g"]
    spend = view["window_spend_g"]
    window = f"{view['budget_window_ms'] / 60_000:g} min"
    if spend is None:
        t.add_row("state", "no decision yet (nothing in the tenant changelog)")
    else:
        used = f" ({100 * spend / budget:.1f} % of {budget:g} g)" if budget else " (no budget)"
        t.add_row(f"spend in the {window} window", f"{spend:.4g} g{used}")
        t.add_row("requests in the window", str(view["window_requests"]))
        duals = view["duals"]
        t.add_row("lambda (carbon)", f"{duals['lambda']:.4g}")
        t.add_row("nu (latency)", f"{duals['nu']:.4g}")
        for ds, mu in sorted(duals["mu"].items()):
            t.add_row(f"mu {ds} (accuracy)", f"{mu:.4g}")
        t.add_row("decisions folded", str(view["decisions_folded"]))
    if view["mu_scope"] is not None:
        scope = view["scope"]
        pooled = f"pooled over partition {view['partition']} (scope {view['mu_scope']})"
        if scope is None:
            t.add_row("mu (accuracy)", f"{pooled}: no decision yet")
        else:
            for ds, mu in sorted(scope["mu"].items()):
                t.add_row(f"mu {ds} (accuracy, pooled)", f"{mu:.4g}")
            t.add_row("scope decisions folded", f"{scope['decisions_folded']} ({pooled})")
    console.print(t)
    if view["last_decisions"]:
        d = Table(title=f"last {len(view['last_decisions'])} decisions")
        cols = ("request_id", "dataset", "model", "region", "co2_g", "reason", "policy_version")
        for col in cols:
            d.add_column(col, overflow="fold")
        for rec in view["last_decisions"]:
            d.add_row(*(f"{rec[c]:.4g}" if c == "co2_g" else str(rec[c]) for c in cols))
        console.print(d)


def register(root: typer.Typer) -> None:
    root.add_typer(policy_app, name="policy")
    root.add_typer(tenants_app, name="tenants")
