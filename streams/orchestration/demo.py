"""``gar demo``: the whole control plane on the local broker, bounded in time.

Topics (own prefix and app id per run) -> carbon feed for the trace's period -> a worker and the
fleet simulator as real subprocesses -> a stream of real requests (the eval trace builder) ->
wait until every request is one decision or one dead letter -> summary table. Exits non-zero if
any request is unaccounted for.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from aiokafka import AIOKafkaConsumer
from rich.console import Console
from rich.table import Table

from streams.app.catalog import DEFAULT_CATALOG_PATH
from streams.config import Settings
from streams.core.catalog import Catalog
from streams.data.sample import check_data_dir
from streams.devenv.ports import free_port
from streams.eval.matrix_score import floor_tolerance
from streams.kafka.admin import delete_prefixed_topics, ensure_topics
from streams.kafka.clients import client_kwargs
from streams.kafka.topics import TopicLayout, topic_specs

HOUR_MS = 3_600_000


@dataclass
class DemoResult:
    sent: int = 0
    decisions: list[dict[str, Any]] = field(default_factory=list)
    dead: list[dict[str, Any]] = field(default_factory=list)
    completions: list[dict[str, Any]] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def accounted(self) -> int:
        return len({d["request_id"] for d in self.decisions}) + len(self.dead)


def demo_settings(base: Settings, catalog_path: Path) -> Settings:
    run = uuid.uuid4().hex[:6]
    d = base.model_dump()
    d["topics"]["prefix"] = f"demo.{run}."
    d["app_id"] = f"demo.{run}.router"  # its changelogs start with the run's prefix too
    d["worker"]["catalog_path"] = str(catalog_path)
    if base.decision_mac.key is None:  # a key for this run: its records are signed and verified
        d["decision_mac"]["key"] = secrets.token_urlsafe(32)
    # The demo's worker serves its status page on a free port (printed at start).
    d["worker"]["web_enabled"] = True
    d["worker"]["web_port"] = free_port(d["worker"]["web_bind"])
    return Settings(**d)


def demo_catalog(settings: Settings) -> Path:
    """The packaged catalog, or one built from the shared real data (cached under var/)."""
    if settings.worker.catalog_path is not None:
        return settings.worker.catalog_path
    if DEFAULT_CATALOG_PATH.exists():
        return DEFAULT_CATALOG_PATH
    path = settings.dev.state_dir / "demo" / "catalog.json"
    if not path.exists():
        from streams.data.catalog_builder import build_catalog
        from streams.data.correctness import load_correctness
        from streams.data.energy import load_energy
        from streams.tools.produce import correctness_files

        data = load_correctness(correctness_files(settings))
        profiles = load_energy(settings.data.dir / "energy" / "mlenergy-v3-llm.csv")
        path.parent.mkdir(parents=True, exist_ok=True)
        build_catalog(data, profiles).catalog.dump(path)
    return path


def demo_policy(settings: Settings, n_requests: int, days: float) -> dict[str, Any]:
    """The evaluation scenario's policy (calibrated floors, SLO, per-tenant budgets) as a
    policy.v1 record, so the demo routes under the same rules as ``gar eval``."""
    from streams.eval.scenario import ScenarioSettings, build_scenario
    from streams.tools.produce import correctness_files

    d = settings.data.dir
    scn = build_scenario(
        ScenarioSettings(
            correctness=tuple(correctness_files(settings)),
            energy=d / "energy" / "mlenergy-v3-llm.csv",
            carbon_dir=d / "carbon" / "electricitymaps-hourly-2023",
            n_requests=n_requests,
            days=days,
        )
    )
    return {
        "schema_version": 1,
        "scope": "global",
        "policy_name": settings.worker.policy,
        "config": scn.config.to_dict(),
    }


def publishable(record: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The record as the policy topic's parser accepts it: config fields the parser does not
    know yet (core ahead of the policy.v1 schema) are dropped and returned, so the demo says so
    instead of having its policy dead-lettered."""
    from streams.ingress.policy import CONFIG_FIELDS

    cfg = record["config"]
    dropped = sorted(k for k in cfg if k not in CONFIG_FIELDS)
    kept = {k: v for k, v in cfg.items() if k in CONFIG_FIELDS}
    return {**record, "config": kept}, dropped


async def _publish(settings: Settings, topic: str, key: bytes, value: bytes) -> None:
    from streams.tools.kafka_io import producer

    prod = producer(settings)
    await prod.start()
    try:
        await prod.send_and_wait(topic, value, key=key)
    finally:
        await prod.stop()


def child_env(settings: Settings) -> dict[str, str]:
    """Environment that makes a child ``gar`` process (worker, tools) use ``settings``' run."""
    env = dict(os.environ)
    env.update(
        {
            "GAR_APP_ID": settings.app_id,
            "GAR_TOPICS__PREFIX": settings.topics.prefix,
            "GAR_TOPICS__PARTITIONS": str(settings.topics.partitions),
            "GAR_WORKER__CATALOG_PATH": str(settings.worker.catalog_path),
            "GAR_WORKER__WEB_ENABLED": str(settings.worker.web_enabled).lower(),
            "GAR_WORKER__WEB_PORT": str(settings.worker.web_port),
            "GAR_DATA__DIR": str(settings.data.dir),
            "GAR_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
            # the run's metrics are findable by their worker tag (dashboards' worker variable)
            "GAR_INFLUX__WORKER_TAG": settings.app_id,
        }
    )
    mac = settings.decision_mac
    if mac.key is not None:  # the child signs the decisions with the run's key
        env["GAR_DECISION_MAC__KEY"] = mac.key.get_secret_value()
        env["GAR_DECISION_MAC__KEY_ID"] = mac.key_id
    return env


def _gar(args: list[str], settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    gar = Path(sys.executable).with_name("gar")
    return subprocess.Popen(
        [str(gar), *args], env=child_env(settings), stdout=log.open("wb"), stderr=subprocess.STDOUT
    )


async def _collect(
    settings: Settings, lay: TopicLayout, run_prefix: str, n: int, timeout_s: float, res: DemoResult
) -> None:
    """Read decisions, dead letters and completions until all ``n`` requests are accounted."""
    consumer = AIOKafkaConsumer(
        lay.decisions,
        lay.dead_letter,
        settings.topics.name(settings.topics.completions),
        **client_kwargs(settings.kafka),
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    deadline = time.monotonic() + timeout_s
    seen_decided: set[str] = set()
    try:
        while time.monotonic() < deadline:
            for tp, msgs in (await consumer.getmany(timeout_ms=500, max_records=10_000)).items():
                for m in msgs:
                    rec = orjson.loads(m.value)
                    if not str(rec.get("request_id") or "").startswith(run_prefix) and (
                        tp.topic != lay.dead_letter
                    ):
                        continue
                    if tp.topic == lay.decisions:
                        if rec["request_id"] not in seen_decided:
                            seen_decided.add(rec["request_id"])
                            res.decisions.append(rec)
                    elif tp.topic == lay.dead_letter:
                        res.dead.append(rec)
                    else:
                        res.completions.append(rec)
            if res.accounted >= n:
                if len(res.completions) >= len(res.decisions):
                    break
                # Every request is accounted for; give the fleet's telemetry a little longer.
                deadline = min(deadline, time.monotonic() + 15.0)
    finally:
        await consumer.stop()


def run_demo(
    base: Settings,
    n_requests: int,
    rate_per_s: float,
    poison_fraction: float,
    timeout_s: float,
    console: Console,
    keep_topics: bool = False,
) -> int:
    """The demo; its topics are deleted afterwards unless ``keep_topics`` (leftover topics
    cost the broker and every client's metadata requests)."""
    check_data_dir(base.data.dir)  # before anything is created on the broker
    catalog_path = demo_catalog(base)
    settings = demo_settings(base, catalog_path)
    try:
        return _run(settings, catalog_path, n_requests, rate_per_s, poison_fraction, timeout_s,
                    console)  # fmt: skip
    finally:
        if keep_topics:
            console.print(
                f"topics kept: gar --prefix {settings.topics.prefix} audit; "
                f"gar topics delete --prefix {settings.topics.prefix}"
            )
        else:
            deleted = asyncio.run(delete_prefixed_topics(settings, [settings.topics.prefix]))
            console.print(f"deleted the run's {len(deleted)} topics (--keep-topics keeps them)")


# Long on purpose: the demo's steps (topics, feeds, worker and fleet, traffic, the wait for
# every outcome, the summary) in the order they run.
def _run(
    settings: Settings,
    catalog_path: Path,
    n_requests: int,
    rate_per_s: float,
    poison_fraction: float,
    timeout_s: float,
    console: Console,
) -> int:
    from streams.tools.carbon_feed import carbon_dir, feed_carbon, merged_events
    from streams.tools.produce import produce_requests, trace_requests

    catalog = Catalog.load(catalog_path)
    lay = TopicLayout.from_settings(settings, catalog.model_names)
    logs = settings.dev.state_dir / "demo" / settings.app_id
    logs.mkdir(parents=True, exist_ok=True)
    console.print(
        f"[bold]gar demo[/bold] app {settings.app_id}, topics {settings.topics.prefix}*,"
        f" catalog {catalog_path} ({len(catalog.model_names)} models x "
        f"{len(catalog.regions)} regions), logs {logs}"
    )
    asyncio.run(ensure_topics(settings, topic_specs(settings, catalog.model_names)))
    policy, dropped = publishable(demo_policy(settings, n_requests, days=1.0))
    if dropped:
        console.print(
            "[yellow]policy fields not in policy.v1 yet, left at their defaults:"
            f"[/yellow] {', '.join(dropped)}"
        )
    asyncio.run(_publish(settings, lay.policy, b"global", orjson.dumps(policy)))
    cfg = policy["config"]
    console.print(
        f"policy {policy['policy_name']} v{cfg['version']} ({cfg['mode']}): floors "
        f"{cfg['floors']}, p95 SLO {cfg['latency_slo_ms']:.0f} ms, "
        f"{len(cfg['budgets_g'])} tenant budgets"
    )
    run_id = f"demo{uuid.uuid4().hex[:6]}"
    requests = trace_requests(settings, catalog, n_requests, run_id=run_id, days=1.0)
    start_ms = min(r.ts_ms for r in requests) // HOUR_MS * HOUR_MS - 2 * HOUR_MS
    hours = (max(r.ts_ms for r in requests) - start_ms) // HOUR_MS + 2
    zones = sorted({r.zone for r in catalog.regions})
    events = merged_events(
        carbon_dir(settings),
        zones,
        start_ms=start_ms,
        end_ms=start_ms + hours * HOUR_MS,
        emission_factor="direct",  # the signal the evaluation (and the demo's policy) uses
    )
    fed = asyncio.run(feed_carbon(settings, events))
    console.print(f"carbon feed: {fed.sent} hourly readings for {len(zones)} zones")
    worker = _gar(["worker"], settings, logs / "worker.log")
    if settings.worker.web_enabled:
        w = settings.worker
        console.print(f"live status of the worker: http://{w.web_bind}:{w.web_port}/status")
    fleet = _gar(["fleet", "--duration", str(timeout_s + 30)], settings, logs / "fleet.log")
    res = DemoResult()
    t0 = time.monotonic()
    try:
        stats = asyncio.run(
            produce_requests(
                settings, requests, rate_per_s=rate_per_s, poison_fraction=poison_fraction
            )
        )
        res.sent = stats.sent
        console.print(
            f"produced {stats.sent} requests ({stats.poisoned} poisoned) at "
            f"{stats.rate_per_s:.0f}/s"
        )
        asyncio.run(_collect(settings, lay, run_id, stats.sent, timeout_s, res))
        res.elapsed_s = time.monotonic() - t0
    finally:
        for proc in (fleet, worker):
            proc.terminate()
        for proc in (fleet, worker):
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
    audited = audit_run(settings, console, res)
    print_summary(console, catalog, res)
    lost = res.sent - res.accounted
    if lost > 0:
        console.print(f"[red]{lost} requests unaccounted for[/red] (see {logs})")
        return 1
    if not audited:
        return 1
    console.print(f"[green]all {res.sent} requests accounted for[/green] in {res.elapsed_s:.1f}s")
    if settings.influx.enabled:
        since = int(time.time() - res.elapsed_s - 60)
        console.print(
            f"metrics in InfluxDB {settings.influx.url} as worker={settings.app_id} (wall-clock "
            f"time): gar report --since {since * 1000} --tag worker={settings.app_id}; "
            f"Grafana /d/gar-carbon?from={since * 1000}&to=now&var-worker={settings.app_id}"
        )
    return 0


def print_summary(console: Console, catalog: Catalog, res: DemoResult) -> None:
    decs = res.decisions
    per = Counter((d["model"], d["region"]) for d in decs)
    t = Table(title="decisions per model and region")
    for col in ("model", "region", "decisions", "share"):
        t.add_column(col, justify="right" if col in ("decisions", "share") else "left")
    for (m, r), n in sorted(per.items(), key=lambda kv: -kv[1]):
        t.add_row(m, r, str(n), f"{n / max(len(decs), 1):.1%}")
    console.print(t)
    largest = max(catalog.models, key=lambda m: (m.params_b, m.name)).name
    big = [k for k, (m, _) in enumerate(catalog.deployments) if m == largest]
    co2 = np.array([d["co2_g"] for d in decs]) if decs else np.zeros(1)
    # Always-largest baseline, per request: the largest model in its lowest-latency region.
    base = (
        np.array(
            [
                d["candidates"]["co2_g"][min(big, key=lambda k: d["candidates"]["latency_ms"][k])]
                for d in decs
            ]
        )
        if decs
        else np.zeros(1)
    )
    comp = res.completions
    correct = [c["correct"] for c in comp if c.get("correct") is not None]
    lat = np.array([c["latency_ms"] for c in comp]) if comp else np.zeros(0)
    s = Table(title="summary")
    s.add_column("metric")
    s.add_column("value", justify="right")
    s.add_row("requests sent", str(res.sent))
    s.add_row("decisions", str(len(decs)))
    s.add_row("dead letters", str(len(res.dead)))
    s.add_row("CO2 per request (g, est.)", f"{co2.mean():.4f}")
    s.add_row(f"CO2 per request, always-largest ({largest})", f"{base.mean():.4f}")
    s.add_row("CO2 saved vs always-largest", f"{1 - co2.sum() / max(base.sum(), 1e-12):.1%}")
    s.add_row(
        "accuracy est. (chosen) / floor (mean)",
        f"{np.mean([d['accuracy_est'] for d in decs] or [0]):.3f} / "
        f"{np.mean([d['floor'] for d in decs] or [0]):.3f}",
    )
    s.add_row(
        "accuracy realised (fleet telemetry)",
        f"{np.mean(correct):.3f} ({len(correct)} graded)" if correct else "n/a",
    )
    slo = np.mean([d["latency_cap_ms"] for d in decs] or [0])
    s.add_row(
        "p95 latency realised / SLO (ms)",
        f"{np.percentile(lat, 95):.0f} / {slo:.0f}" if lat.size else f"n/a / {slo:.0f}",
    )
    reasons = Counter(d["reason"] for d in res.dead)
    s.add_row("dead-letter reasons", ", ".join(f"{k}={v}" for k, v in reasons.most_common()))
    s.add_row(
        "decision reasons",
        ", ".join(f"{k}={v}" for k, v in Counter(d["reason"] for d in decs).items()),
    )
    console.print(s)
    console.print(dataset_table(decs, comp))


def audit_run(settings: Settings, console: Console, res: DemoResult) -> bool:
    """``gar audit`` over the run's decisions: every one re-derived from its routing context,
    the MAC chain verified with the run's key. The summary then reads the audited records
    (decisions.v2 expanded: every candidate's estimates). Returns whether it is clean."""
    from streams.audit.reader import ReadRange
    from streams.audit.run import AuditRequest, run_audit

    report, rows = run_audit(settings, AuditRequest(ReadRange(), outcomes=False, full_records=True))
    full = {str(r.record["request_id"]): r.record for r in rows if r.record is not None}
    res.decisions = [full.get(str(d["request_id"]), d) for d in res.decisions]
    macs = report.macs
    rate = report.rederived / report.rederive_s if report.rederive_s else 0.0
    console.print(
        f"audit: {report.rederived} of {report.rows} decisions re-derived ({rate:,.0f}/s), "
        f"{len(report.mismatches)} mismatches, {len(report.chain.breaks)} dual-chain breaks, "
        + (
            "no MAC chain"
            if macs is None
            else f"MAC chain {macs.verified}/{macs.signed} verified, {len(macs.issues)} findings"
        )
    )
    for m in report.mismatches[:5]:
        console.print(
            f"  MISMATCH {m.where} {m.field}: {m.recorded} != {m.rederived}", markup=False
        )
    return report.ok


def dataset_table(decs: list[dict[str, Any]], completions: list[dict[str, Any]]) -> Table:
    """Realised accuracy per dataset against its floor: the floors are per dataset, so a pooled
    mean can hide which one is under (or over) its floor."""
    graded: dict[str, list[float]] = {}
    for c in completions:
        if c.get("correct") is not None:
            graded.setdefault(str(c["dataset"]), []).append(1.0 if c["correct"] else 0.0)
    t = Table(
        title="accuracy per dataset (realised, graded fleet telemetry)",
        caption="one replayed day from a cold start, like gar-pd's first day in "
        "docs/evaluation.md (its one missed window): the accuracy dual is still "
        "warming up, and graded answers reach it only as the fleet reports them",
    )
    cols = (
        "dataset",
        "decisions",
        "floor",
        "realised",
        "gap pt",
        "tolerance pt",
        "met",
        "infeasible",
    )
    for col in cols:
        t.add_column(col, justify="left" if col == "dataset" else "right")
    for ds in sorted({str(d["dataset"]) for d in decs}):
        mine = [d for d in decs if d["dataset"] == ds]
        floor = float(np.mean([d["floor"] for d in mine]))
        got = graded.get(ds)
        acc = float(np.mean(got)) if got else None
        # The evaluation's floor contract: max(0.5 point, one binomial standard error).
        tol = floor_tolerance(floor, len(got)) if got else None
        gap = None if acc is None else acc - floor
        t.add_row(
            ds,
            str(len(mine)),
            f"{floor:.3f}",
            "n/a" if acc is None else f"{acc:.3f}",
            "n/a" if gap is None else f"{100 * gap:+.1f}",
            "n/a" if tol is None else f"{100 * tol:.1f}",
            "n/a" if gap is None or tol is None else ("yes" if gap >= -tol else "no"),
            str(sum(d["reason"] == "infeasible_fallback" for d in mine)),
        )
    return t
