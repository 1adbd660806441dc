"""``gar eval matrix``: run a declared set of scenarios and score the targets on each.

Per scenario (one process each, ``jobs`` at a time, largest first): build the scenario, run
accuracy-greedy and oracle-lp once, then per online policy the policy itself and oracle-lp at
its realised accuracy per dataset (``runner.equal_accuracy_reference``), and score
(``matrix_score.score``). Each scenario writes ``scenarios/<name>.json`` as soon as it ends;
the caller gets one row per (scenario, policy) and writes the aggregate.
"""

from __future__ import annotations

import json
import multiprocessing
import queue
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from streams.eval.matrix_score import aggregate, score
from streams.eval.matrix_spec import MatrixScenario, MatrixSpec
from streams.eval.oracles import run_oracle
from streams.eval.runner import equal_accuracy_reference, oracle_metrics, run_metrics, run_policy
from streams.eval.scenario import build_scenario

GREEDY = "accuracy-greedy"
PROGRESS_EVERY_S = 0.5
Progress = Callable[[str, str, int], None]
"""(scenario name, step label, requests done since the last call)."""


def scenario_units(ms: MatrixScenario, n_policies: int) -> int:
    """Progress units of one scenario: requests x (accuracy-greedy + oracle-lp + 2 per
    policy: its run and its equal-accuracy oracle)."""
    return ms.settings.n_requests * (2 + 2 * n_policies)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=_json_default) + "\n", encoding="utf-8")
    tmp.replace(path)


def run_scenario(
    ms: MatrixScenario,
    policies: Sequence[str],
    out_dir: Path,
    progress: Progress | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Run and score one scenario; write ``out_dir/scenarios/<name>.json``; return one row
    per policy. ``overrides`` (PolicyConfig fields) apply to the evaluated policies, not to
    accuracy-greedy (the reference of target 1)."""
    started, cpu_started = time.perf_counter(), time.process_time()
    timings: dict[str, float] = {}

    def timed(label: str, fn: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        value = fn()
        timings[label] = round(time.perf_counter() - t0, 2)
        return value

    def tick(label: str) -> Callable[[int], None] | None:
        return None if progress is None else (lambda k: progress(ms.name, label, k))

    scn = timed("build", lambda: build_scenario(ms.settings))
    everything = timed("outcomes", scn.world.all_outcomes)
    expected_co2 = timed("expected co2", scn.world.expected_co2_g)
    n = len(scn.trace)
    greedy_run = timed(GREEDY, lambda: run_policy(scn, GREEDY, progress=tick(GREEDY)))
    greedy = run_metrics(scn, greedy_run, everything)
    lp = timed(
        "oracle-lp",
        lambda: oracle_metrics(scn, run_oracle("oracle-lp", scn, everything), everything),
    )
    if progress is not None:
        progress(ms.name, "oracle-lp", n)
    t = scn.trace
    counts = np.bincount(t.dataset_idx, minlength=len(t.dataset_names))
    requests = {d: int(c) for d, c in zip(t.dataset_names, counts.tolist(), strict=True) if c}
    per_policy: dict[str, Any] = {}
    rows: list[dict[str, Any]] = []
    config = scn.config.with_(**overrides) if overrides else scn.config
    for name in policies:
        if name == GREEDY and config is scn.config:
            run, metrics = greedy_run, greedy
            if progress is not None:
                progress(ms.name, name, n)
        else:
            run = timed(name, partial(run_policy, scn, name, config, progress=tick(name)))
            metrics = run_metrics(scn, run, everything)
        eq = timed(
            f"equal-accuracy:{name}",
            partial(
                equal_accuracy_reference,
                scn,
                everything,
                name,
                metrics,
                run.candidate,
                expected_co2,
            ),
        )
        if progress is not None:
            progress(ms.name, f"oracle-lp at {name}", n)
        scored = score(
            metrics, greedy, lp, eq, scn.floors, requests, scn.settings.slo_ms, ms.settings.days
        )
        per_policy[name] = {
            "policy_config": config.to_dict(),
            "metrics": metrics,
            "equal_accuracy_oracle": eq,
            "score": scored,
        }
        rows.append({**scenario_row(ms, scn.floors), "policy": name, **scored})
    elapsed = round(time.perf_counter() - started, 2)
    cpu = round(time.process_time() - cpu_started, 2)
    for row in rows:
        row["elapsed_s"] = elapsed
        row["cpu_s"] = cpu
    write_json(
        out_dir / "scenarios" / f"{ms.name}.json",
        {
            "format": "gar-eval-matrix-scenario/1",
            "name": ms.name,
            "description": ms.description,
            "spec_values": ms.values,
            "elapsed_s": elapsed,
            "cpu_s": cpu,
            "timings_s": timings,
            "requests_per_dataset": requests,
            "accuracy_greedy": greedy,
            "oracle_lp": lp,
            "policies": per_policy,
            "scenario": scn.describe(),
        },
    )
    return rows


def scenario_row(ms: MatrixScenario, floors: dict[str, float]) -> dict[str, Any]:
    """The scenario's identity in a result row."""
    s = ms.settings
    return {
        "scenario": ms.name,
        "description": ms.description,
        "requests": s.n_requests,
        "days": s.days,
        "zones": list(s.zones),
        "models": list(s.models),
        "seed": s.seed,
        "floor_alpha": s.floor_alpha,
        "floors_used": floors,
        "tenants": s.tenants or 3,
        "dataset_shares": dict(s.dataset_shares),
    }


class _Relay:
    """Worker-side progress: batches ticks and sends them at most every PROGRESS_EVERY_S."""

    def __init__(self, q: Any) -> None:
        self.q = q
        self.pending: dict[tuple[str, str], int] = {}
        self.last = time.monotonic()

    def __call__(self, name: str, label: str, k: int) -> None:
        self.pending[(name, label)] = self.pending.get((name, label), 0) + k
        now = time.monotonic()
        if now - self.last >= PROGRESS_EVERY_S:
            self.flush()
            self.last = now

    def flush(self) -> None:
        for (name, label), k in self.pending.items():
            self.q.put((name, label, k))
        self.pending.clear()


def _worker(
    ms: MatrixScenario,
    policies: Sequence[str],
    out_dir: Path,
    q: Any,
    overrides: Mapping[str, Any],
) -> list[dict[str, Any]]:
    relay = _Relay(q)
    try:
        return run_scenario(ms, policies, out_dir, relay, overrides)
    finally:
        relay.flush()


@dataclass
class MatrixResult:
    rows: list[dict[str, Any]] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    wall_s: float = 0.0


def run_matrix(
    spec: MatrixSpec,
    out_dir: Path,
    jobs: int = 2,
    progress: Progress | None = None,
    on_done: Callable[[str, list[dict[str, Any]] | None], None] | None = None,
) -> MatrixResult:
    """Every scenario of ``spec`` (largest first), ``jobs`` processes at a time (1: in this
    process). A scenario that raises is recorded in ``errors`` with its traceback; the others
    still run."""
    started = time.perf_counter()
    result = MatrixResult()
    order = sorted(spec.scenarios, key=lambda s: -s.size)
    if jobs <= 1:
        for ms in order:
            try:
                rows = run_scenario(ms, spec.policies, out_dir, progress, spec.policy_config)
            except Exception:  # a measurement run reports and goes on
                result.errors[ms.name] = traceback.format_exc()
                rows = None
            result.rows.extend(rows or [])
            if on_done is not None:
                on_done(ms.name, rows)
    else:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Manager() as manager, ProcessPoolExecutor(jobs, mp_context=ctx) as pool:
            q = manager.Queue()
            futures: dict[Future[list[dict[str, Any]]], MatrixScenario] = {
                pool.submit(_worker, ms, spec.policies, out_dir, q, spec.policy_config): ms
                for ms in order
            }
            pending = set(futures)
            while pending:
                done, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
                _drain(q, progress)
                for fut in done:
                    ms = futures[fut]
                    try:
                        rows = fut.result()
                    except Exception:
                        result.errors[ms.name] = traceback.format_exc()
                        rows = None
                    result.rows.extend(rows or [])
                    if on_done is not None:
                        on_done(ms.name, rows)
            _drain(q, progress)
    names = [s.name for s in spec.scenarios]
    result.rows.sort(key=lambda r: (names.index(r["scenario"]), spec.policies.index(r["policy"])))
    result.wall_s = round(time.perf_counter() - started, 1)
    return result


def _drain(q: Any, progress: Progress | None) -> None:
    while True:
        try:
            name, label, k = q.get_nowait()
        except queue.Empty:
            return
        if progress is not None:
            progress(name, label, k)


def summarise(spec: MatrixSpec, result: MatrixResult, jobs: int) -> dict[str, Any]:
    """The aggregate report: every row, and per policy the median and worst of each target
    across scenarios (``matrix_score.aggregate``)."""
    return {
        "format": "gar-eval-matrix/1",
        "spec": str(spec.path),
        "policies": list(spec.policies),
        "policy_config": spec.policy_config,
        "scenarios": [s.name for s in spec.scenarios],
        "jobs": jobs,
        "wall_s": result.wall_s,
        "rows": result.rows,
        "summary": {
            p: aggregate([r for r in result.rows if r["policy"] == p]) for p in spec.policies
        },
        "errors": result.errors,
    }
