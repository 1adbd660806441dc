"""One ``gar audit`` run end to end: read, re-derive, chain, summarise, counterfactual."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from streams.audit.contexts import ContextIndex, read_contexts
from streams.audit.reader import DecisionRow, ReadRange, read_decisions
from streams.audit.rederive import (
    Rederiver,
    configs_from_policy_rows,
    counterfactual,
    load_config_file,
)
from streams.audit.report import AuditReport
from streams.audit.verify import audit_rows
from streams.config import Settings
from streams.core import Catalog, PolicyConfig


@dataclass
class AuditRequest:
    rng: ReadRange
    topic: str | None = None
    catalog_path: Path | None = None
    config_files: list[Path] = field(default_factory=list)
    read_policy_topic: bool = True
    counterfactual_policy: str | None = None
    check_inputs: bool = True
    outcomes: bool = True
    idle_ms: int = 1_000
    progress: bool = False
    full_records: bool = False
    """Expand v2 records with every candidate's estimates (the counterfactual does)."""


def load_catalog(settings: Settings, path: Path | None) -> Catalog:
    if path is not None:
        return Catalog.load(path)
    from streams.app.catalog import load_catalog as worker_catalog  # what the router uses

    return worker_catalog(settings)


def policy_configs(settings: Settings, req: AuditRequest) -> dict[str, PolicyConfig]:
    default = PolicyConfig.default()  # what the router uses before any policy record
    configs = {default.version: default}
    if req.read_policy_topic:
        topic = settings.topics.name(settings.topics.policy)
        try:
            rows = read_decisions(settings, ReadRange(), topic=topic, idle_ms=req.idle_ms)
        except LookupError:
            rows = []
        configs.update(configs_from_policy_rows(rows))
    for path in req.config_files:
        cfg = load_config_file(path)
        configs[cfg.version] = cfg
    return configs


def run_audit(settings: Settings, req: AuditRequest) -> tuple[AuditReport, list[DecisionRow]]:
    topic = req.topic or settings.topics.name(settings.topics.decisions)
    rows = read_decisions(
        settings, req.rng, topic=topic, idle_ms=req.idle_ms, progress=req.progress
    )
    catalog = load_catalog(settings, req.catalog_path)
    configs = policy_configs(settings, req)
    contexts = ContextIndex.from_rows(catalog, read_contexts(settings, rows, req.idle_ms))
    # v2 decisions carry their config in their context: the counterfactual reads it there.
    for inputs in contexts.inputs.values():
        configs.setdefault(inputs.config.version, inputs.config)
    v1 = Rederiver(catalog, configs)
    keys = settings.decision_mac.keyring()
    requests_topic = settings.topics.name(settings.topics.requests)
    if req.progress:
        from rich.progress import Progress

        with Progress(transient=True) as bar:
            task = bar.add_task("re-deriving", total=len(rows))
            report, rows = audit_rows(
                topic,
                rows,
                v1,
                contexts,
                keys,
                requests_topic,
                lambda n: bar.advance(task, n),
                candidates=req.full_records or req.counterfactual_policy is not None,
            )
    else:
        report, rows = audit_rows(
            topic,
            rows,
            v1,
            contexts,
            keys,
            requests_topic,
            candidates=req.full_records or req.counterfactual_policy is not None,
        )
    if req.rng.start_ms is not None or req.rng.end_ms is not None:
        # The time seek starts at the first record whose Kafka timestamp is >= start - lateness.
        # The control plane's topics use LogAppendTime (arrival >= event time), so only a record
        # stamped EARLIER than its event time by more than the lateness can be missed.
        skewed = sum(
            1
            for r in rows
            if r.record is not None
            and isinstance(r.record.get("ts_ms"), int)
            and r.record["ts_ms"] - r.timestamp_ms > req.rng.lateness_ms
        )
        if skewed:
            report.warnings.append(
                f"{skewed} records have a Kafka timestamp more than --lateness-ms away from "
                "their event time: the time range may miss records; use --offsets or a larger "
                "--lateness-ms"
            )
    if req.check_inputs:
        from streams.audit.inputs import check_request_inputs

        checked, found, missing = check_request_inputs(settings, rows, req.idle_ms)
        report.inputs_checked = checked
        report.mismatches.extend(found)
        report.unverifiable.extend(missing)
    if req.outcomes:
        from streams.audit.outcomes import join_outcomes, read_completions

        completions = read_completions(settings, rows, req.rng.lateness_ms, req.idle_ms)
        report.outcomes = join_outcomes(rows, completions, catalog).to_dict()
    if req.counterfactual_policy:
        report.counterfactual = counterfactual(rows, catalog, configs, req.counterfactual_policy)
    return report, rows
