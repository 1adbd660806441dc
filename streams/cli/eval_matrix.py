"""``gar eval matrix``: the scenario matrix (streams/eval/matrix.py) on the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from streams.cli.eval_options import fail as _fail
from streams.cli.eval_options import parse_policy_config

TABLE_WIDTH = 220


def matrix_cmd(
    out: Annotated[Path, typer.Option("--out", help="Directory for the JSON and markdown.")],
    spec: Annotated[
        str,
        typer.Option(
            "--spec",
            help="Spec file (TOML), or a packaged spec: 'default' (the full matrix) or 'smoke'.",
        ),
    ] = "default",
    jobs: Annotated[int, typer.Option("--jobs", help="Scenarios run in parallel.")] = 2,
    only: Annotated[
        str | None, typer.Option("--only", help="Comma-separated scenario names to run.")
    ] = None,
    policies: Annotated[
        str | None,
        typer.Option(
            "--policies",
            help="Online policies to score, each on every scenario (default: the spec's, "
            "else gar-pd).",
        ),
    ] = None,
    policy_overrides: Annotated[
        str | None,
        typer.Option(
            "--policy-config",
            help="JSON object of PolicyConfig overrides for the evaluated policies of every "
            "scenario (over the spec's policy_config; accuracy-greedy keeps the spec's).",
        ),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option("--data", help="Shared data directory (default: the spec's, else settings)."),
    ] = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Exit 1 when a target misses (targets 1, 2, 4 on every scenario, 3 on >= 90% "
            "of the 7-day scenarios).",
        ),
    ] = False,
) -> None:
    """Run a declared set of scenarios and score the accuracy, carbon, window and latency
    targets on each (docs/evaluation.md, "Scenario matrix"). Exit 0 even when targets miss
    (it is a measurement) unless --check; exit 2 on a bad spec or a scenario that fails."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from streams.eval.matrix import run_matrix, scenario_units, summarise, write_json
    from streams.eval.matrix_report import markdown_report, rich_table, summary_lines
    from streams.eval.matrix_spec import SpecError, load_spec

    if jobs < 1:
        raise typer.BadParameter("--jobs must be >= 1")
    overrides = parse_policy_config(policy_overrides)
    split = [x.strip() for x in (policies or "").split(",") if x.strip()]
    names = [x.strip() for x in (only or "").split(",") if x.strip()]
    try:
        matrix = load_spec(
            spec, data_dir=data, policies=split or None, policy_config=overrides, only=names
        )
    except SpecError as exc:
        _fail(str(exc))
        return
    console = Console()
    if not console.is_terminal:
        console = Console(width=TABLE_WIDTH)  # a log file gets the whole table unwrapped
    total = sum(scenario_units(s, len(matrix.policies)) for s in matrix.scenarios)
    with Progress(
        TextColumn("{task.description:<40}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("matrix", total=total)
        done: list[str] = []

        def tick(name: str, label: str, k: int) -> None:
            bar.update(task, advance=k, description=f"{name}: {label}")

        def finished(name: str, rows: list[dict[str, Any]] | None) -> None:
            done.append(name)
            state = (
                "failed"
                if rows is None
                else f"{rows[0]['elapsed_s']:.0f} s ({rows[0]['cpu_s']:.0f} s CPU)"
            )
            bar.console.print(f"[{len(done)}/{len(matrix.scenarios)}] {name}: {state}")

        result = run_matrix(matrix, out, jobs=jobs, progress=tick, on_done=finished)
    report = summarise(matrix, result, jobs)
    write_json(out / "matrix.json", report)
    (out / "matrix.md").write_text(markdown_report(report), encoding="utf-8")
    console.print(rich_table(result.rows, f"scenario matrix ({matrix.path.name})"))
    for line in summary_lines(report["summary"]):
        console.print(line, highlight=False, soft_wrap=True)
    console.print(f"wall time {result.wall_s:.0f} s ({jobs} jobs); wrote {out}/", highlight=False)
    for name, trace in result.errors.items():
        typer.secho(f"scenario {name} failed:\n{trace}", fg=typer.colors.RED, err=True)
    if result.errors:
        raise typer.Exit(2)
    if check and not all(s["all_hold"] for s in report["summary"].values()):
        raise typer.Exit(1)
