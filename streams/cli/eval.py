"""``gar eval`` (the evaluation harness on real data) and ``gar catalog build``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from typer import _click
from typer.core import TyperGroup

from streams.cli.eval_options import fail as _fail
from streams.cli.eval_options import parse_policy_config
from streams.config import PACKAGE_DIR, load_settings

DEFAULT_CATALOG = PACKAGE_DIR / "resources" / "catalog.json"
catalog_app = typer.Typer(no_args_is_help=True, help="Build the routing catalog from real data.")


def _split(text: str | None) -> list[str] | None:
    if text is None:
        return None
    items = [x.strip() for x in text.split(",") if x.strip()]
    return items or None


def _floats(text: str | None) -> list[float]:
    if text is None or text.strip().lower() in ("", "none", "off"):
        return []
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated numbers, got {text!r}") from None


def _pairs(text: str | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in _split(text) or []:
        key, sep, value = item.partition("=")
        try:
            out[key.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not key.strip():
            raise typer.BadParameter(f"expected dataset=value, got {item!r}")
    return out


def _start_ms(text: str | None) -> int | None:
    """``--start``: the one time parser (ISO-8601, epoch ms, ``6h`` ago)."""
    if text is None:
        return None
    from streams.cli.tools import time_option

    return time_option("--start", text)


# A typer command: its signature is one annotated parameter per CLI option (most of its
# length); the body only resolves them into a scenario and runs it.
def eval_cmd(
    json_out: Annotated[Path, typer.Option("--json", help="Where to write the JSON report.")],
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="Data directory whose correctness/, energy/ and carbon/ files are the defaults "
            "(default GAR_DATA__DIR, else the sample shipped in the package).",
        ),
    ] = None,
    correctness: Annotated[
        list[Path] | None,
        typer.Option(
            "--correctness",
            help="Correctness CSV(.gz) files (query_id,dataset,model,params_b,correct,"
            "output_tokens_est). Several: --correctness A B or repeat the option.",
        ),
    ] = None,
    energy: Annotated[Path | None, typer.Option("--energy", help="ML.ENERGY LLM CSV.")] = None,
    carbon: Annotated[
        Path | None,
        typer.Option("--carbon", help="Directory of Electricity Maps hourly CSV exports."),
    ] = None,
    more_correctness: Annotated[
        list[Path] | None, typer.Argument(help="More correctness files (after --correctness).")
    ] = None,
    zones: Annotated[
        str | None,
        typer.Option(
            "--zones", help="Zones to deploy in (default US-MIDA-PJM,US-CAL-CISO,GB,DE-LU,SG)."
        ),
    ] = None,
    policies: Annotated[
        str | None,
        typer.Option("--policies", help="Policies (default: every registered one + gar-pd@home)."),
    ] = None,
    floor: Annotated[
        float,
        typer.Option(
            "--floor",
            help="Floor level alpha: F_d = alpha x best pool accuracy on d (calibration half).",
        ),
    ] = 0.95,
    floors: Annotated[
        str | None,
        typer.Option("--floors", help="Absolute floors per dataset, e.g. gsm8k=0.9,mbpp=0.5."),
    ] = None,
    slo_ms: Annotated[float, typer.Option("--slo-ms", help="p95 latency SLO (ms).")] = 12_000.0,
    seed: Annotated[int, typer.Option("--seed", help="Trace and noise seed.")] = 0,
    requests: Annotated[int, typer.Option("--requests", help="Requests in the trace.")] = 10_000,
    days: Annotated[float, typer.Option("--days", help="Length of the period (days).")] = 7.0,
    start: Annotated[
        str | None,
        typer.Option(
            "--start",
            help="Period start: ISO-8601 (UTC), epoch ms or 6h (ago); default: day 150.",
        ),
    ] = None,
    models: Annotated[
        str | None,
        typer.Option(
            "--models",
            help="Model pool: comma-separated names, 'all-open', or a named pool 'gsm8k' | "
            "'routerbench' | 'default' (5 GSM8K + 5 RouterBench open models, 7B-70B).",
        ),
    ] = None,
    tenants: Annotated[
        int | None,
        typer.Option("--tenants", help="Number of tenants, Zipf shares (default: 3 at 50/30/20%)."),
    ] = None,
    tenant_skew: Annotated[
        float, typer.Option("--tenant-skew", help="Zipf exponent of the tenants' shares.")
    ] = 1.0,
    dataset_shares: Annotated[
        str | None,
        typer.Option(
            "--dataset-shares",
            help="Traffic share per dataset, e.g. mbpp=0.05 (the rest split by question "
            "count; default: uniform over questions).",
        ),
    ] = None,
    mode: Annotated[str, typer.Option("--mode", help="strict | balanced | green.")] = "balanced",
    signal: Annotated[str, typer.Option("--signal", help="direct | lca intensity.")] = "direct",
    budget_fraction: Annotated[
        float,
        typer.Option(
            "--budget-fraction",
            help="Tenant budget as a fraction of always-largest-at-"
            "home prior CO2 (0 = no budgets).",
        ),
    ] = 0.5,
    sweep: Annotated[
        str,
        typer.Option("--sweep", help="Floor levels for the frontier sweep ('none' to skip)."),
    ] = "0.85,0.9,0.98",
    report_dir: Annotated[
        Path | None,
        typer.Option("--report-dir", help="Markdown + PNGs (default: <json stem>_report/)."),
    ] = None,
    priors: Annotated[
        str,
        typer.Option(
            "--priors",
            help="calibration (default) | hindsight: ablation with the true mean accuracies.",
        ),
    ] = "calibration",
    plots: Annotated[bool, typer.Option("--plots/--no-plots", help="Write PNG plots.")] = True,
    policy_overrides: Annotated[
        str | None,
        typer.Option("--policy-config", help="JSON object of PolicyConfig field overrides."),
    ] = None,
    calibrate: Annotated[
        bool,
        typer.Option(
            "--calibrate/--no-calibrate",
            help="Tune gar-pd's per-dataset mu targets and starting mu with a hindsight LP on "
            "the calibration half of the questions and the preceding period's carbon data.",
        ),
    ] = False,
    calib_pool_margin: Annotated[
        float,
        typer.Option(
            "--calib-pool-margin",
            help="Pooled daily accuracy margin of the calibration LP (--calibrate).",
        ),
    ] = 0.01,
    calib_floor_margin: Annotated[
        float,
        typer.Option(
            "--calib-floor-margin",
            help="gar-pd's uniform floor margin over the calibrated targets.",
        ),
    ] = 0.005,
    live: Annotated[
        bool,
        typer.Option(
            "--live",
            help="Drive a real gar worker on Kafka with the trace (GAR_KAFKA__* settings, "
            "private topics) and compare its decisions with the offline run; exit 1 on any "
            "mismatch. Policies default to gar-pd; use a small --requests.",
        ),
    ] = False,
    live_timeout_s: Annotated[
        float, typer.Option("--live-timeout", help="Seconds to wait for any one step (--live).")
    ] = 120.0,
    keep_topics: Annotated[
        bool, typer.Option("--keep-topics", help="Keep the --live run's topics for inspection.")
    ] = False,
) -> None:
    """Run every policy and both oracles over a trace built from real data. (The scenario
    matrix: gar eval matrix --help.)"""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from streams.core import CoreError
    from streams.data.catalog_builder import DEFAULT_MODELS, DEFAULT_ZONES
    from streams.data.errors import DataFileError
    from streams.eval.report import write_report
    from streams.eval.runner import (
        ORACLE_NAMES,
        SWEEP_POLICIES,
        default_policies,
        floor_sweep,
        run_all,
        to_json,
    )
    from streams.eval.scenario import ScenarioSettings, build_scenario

    if priors not in ("calibration", "hindsight"):
        raise typer.BadParameter("--priors must be calibration or hindsight")
    if signal not in ("direct", "lca"):
        raise typer.BadParameter("--signal must be direct or lca")
    overrides = parse_policy_config(policy_overrides)
    root = data or load_settings().data.dir
    files = [*(correctness or []), *(more_correctness or [])]
    if not files or energy is None or carbon is None:
        from streams.data.sample import CARBON, CORRECTNESS, ENERGY, check_data_dir

        check_data_dir(root)
        files = files or sorted((root / CORRECTNESS).glob("*.csv*"))
        energy = energy or root / ENERGY
        carbon = carbon or root / CARBON
    settings = ScenarioSettings(
        correctness=tuple(files),
        energy=energy,
        carbon_dir=carbon,
        zones=tuple(_split(zones) or DEFAULT_ZONES),
        models=tuple(_split(models) or DEFAULT_MODELS),
        signal=signal,  # type: ignore[arg-type]
        floor_alpha=floor,
        floors=_pairs(floors),
        slo_ms=slo_ms,
        n_requests=requests,
        days=days,
        start_ms=_start_ms(start),
        seed=seed,
        tenants=tenants,
        tenant_skew=tenant_skew,
        dataset_shares=_pairs(dataset_shares),
        mode=mode,
        budget_fraction=budget_fraction if budget_fraction > 0 else None,
        policy_overrides=overrides,
        priors=priors,  # type: ignore[arg-type]
        calibrate=calibrate,
        calib_pool_margin=calib_pool_margin,
        calib_floor_margin=calib_floor_margin,
    )
    try:
        scn = build_scenario(settings)
    except DataFileError as exc:
        _fail(str(exc))
        return
    except (KeyError, ValueError, CoreError) as exc:
        _fail(str(exc).strip("'\""))
        return
    if live:
        live_policies = _split(policies) or [load_settings().worker.policy]  # the worker default
        _live(scn, live_policies, json_out, live_timeout_s, keep_topics)
        return
    wanted = _split(policies) or default_policies()
    online = [p for p in wanted if p not in ORACLE_NAMES]
    alphas = _floats(sweep)
    total = len(scn.trace) * (len(online) + len(ORACLE_NAMES))
    total += len(scn.trace) * len(alphas) * len(SWEEP_POLICIES)
    with Progress(
        TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(), transient=True
    ) as bar:
        task = bar.add_task("eval", total=total)

        def tick(name: str, n: int) -> None:
            bar.update(task, advance=n, description=name)

        try:
            run = run_all(scn, online, progress=tick, margin_oracle=True)
            points = floor_sweep(scn, alphas, progress=tick) if alphas else []
        except CoreError as exc:
            _fail(str(exc))
            return
    report = to_json(run, points)
    json_out.parent.mkdir(parents=True, exist_ok=True)
    json_out.write_text(json.dumps(report, indent=2, default=float) + "\n", encoding="utf-8")
    out_dir = report_dir or json_out.with_name(json_out.stem + "_report")
    if plots:
        write_report(run, report, out_dir)
    else:
        from streams.eval.report import markdown_table

        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "results.md").write_text(markdown_table(report), encoding="utf-8")
    from streams.eval.report import markdown_table

    typer.echo(markdown_table(report))
    typer.echo(f"wrote {json_out} and {out_dir}/")


def _live(
    scn: Any, policies: list[str], json_out: Path, timeout_s: float, keep_topics: bool
) -> None:
    """``gar eval --live``: see streams/orchestration/live_eval.py."""
    from streams.eval.runner import ORACLE_NAMES
    from streams.orchestration.live_eval import LiveError, run_live

    if any(p in ORACLE_NAMES for p in policies):
        _fail("--live runs policies, not the oracles")
    results = {}
    for name in policies:
        try:
            res = run_live(
                load_settings(),
                scn,
                name,
                work_dir=json_out.parent / "eval-live",
                timeout_s=timeout_s,
                keep_topics=keep_topics,
            )
        except (LiveError, OSError) as exc:
            _fail(f"{name}: {exc}")
            return
        c = res.comparison
        results[name] = res.to_dict()
        typer.echo(
            f"{name}: {c.agree}/{c.n_offline} decisions agree "
            f"({100 * c.agree / max(c.n_offline, 1):.2f}%), online {c.n_online}, "
            f"dead letters {len(res.dead_letters)}, {res.elapsed_s:.1f} s"
        )
        for m in c.mismatches[:5]:
            typer.echo(f"  mismatch {m}")
    json_out.parent.mkdir(parents=True, exist_ok=True)
    json_out.write_text(
        json.dumps({"live": results, "scenario": scn.describe()}, indent=2, default=float) + "\n",
        encoding="utf-8",
    )
    if not all(r["identical"] for r in results.values()):
        raise typer.Exit(1)


def catalog_build(
    out: Annotated[Path, typer.Option("--out", help="Catalog JSON to write.")] = DEFAULT_CATALOG,
    data_dir: Annotated[
        Path | None, typer.Option("--data", help="Shared data dir (default: settings).")
    ] = None,
    zones: Annotated[str | None, typer.Option("--zones", help="Comma-separated zones.")] = None,
    models: Annotated[
        str | None, typer.Option("--models", help="Model pool or 'all-open'.")
    ] = None,
) -> None:
    """Build the default catalog (models, regions, priors from the calibration half)."""
    from streams.data import load_correctness, load_energy
    from streams.data.catalog_builder import DEFAULT_MODELS, DEFAULT_ZONES, build_catalog
    from streams.data.errors import DataFileError
    from streams.eval.scenario import resolve_models

    root = data_dir or load_settings().data.dir
    try:
        data = load_correctness(sorted((root / "correctness").glob("*.csv*")))
        profiles = load_energy(root / "energy" / "mlenergy-v3-llm.csv")
        built = build_catalog(
            data,
            profiles,
            resolve_models(data, _split(models) or DEFAULT_MODELS),
            tuple(_split(zones) or DEFAULT_ZONES),
        )
    except (DataFileError, KeyError, ValueError) as exc:
        _fail(str(exc))
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    built.catalog.dump(out)
    typer.echo(f"wrote {out}: {len(built.catalog.models)} models x "
               f"{len(built.catalog.regions)} regions")  # fmt: skip


class _EvalGroup(TyperGroup):
    """``gar eval [OPTIONS]`` is the single-scenario evaluation (the hidden ``run``
    sub-command); ``gar eval matrix ...`` the scenario matrix."""

    def parse_args(self, ctx: _click.Context, args: list[str]) -> list[str]:
        if not args or args[0] not in self.commands:
            args = [DEFAULT_EVAL_COMMAND, *args]
        return super().parse_args(ctx, args)


DEFAULT_EVAL_COMMAND = "run"


def register(app: typer.Typer) -> None:
    from streams.cli.eval_matrix import matrix_cmd

    eval_app = typer.Typer(cls=_EvalGroup, help="Evaluation on real data (see gar eval --help).")
    eval_app.command(DEFAULT_EVAL_COMMAND, no_args_is_help=True, hidden=True)(eval_cmd)
    eval_app.command("matrix")(matrix_cmd)
    app.add_typer(eval_app, name="eval")
    catalog_app.command("build")(catalog_build)
    app.add_typer(catalog_app, name="catalog")
