"""Operating a real worker through ``gar`` as an SRE would: topics by prefix, the policy with a
per-tenant override (set, applied by the worker, recorded in its decisions, shown, audited),
a tenant's state, and the live status page rendered in headless Chromium."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest
from support.worker import (
    create_worker_topics,
    produce,
    read_outputs,
    request_bytes,
    settings_env,
    start_worker,
    wait_log,
    worker_layout,
    worker_settings,
)

from streams.config import Settings
from streams.core.intensity import IntensityReading
from streams.devenv.ports import free_port
from streams.schema import encode, intensity_record

pytestmark = [pytest.mark.integration, pytest.mark.timeout(400)]
T0_MS = 1_685_577_600_000
GAR = str(Path(sys.executable).with_name("gar"))
# Test artifacts (the status page screenshot) are kept here, outside pytest's temp dirs.
ARTIFACTS = Path(__file__).resolve().parents[2] / "out" / "test-artifacts"
CHROMIUM = "chromium-headless-shell"


def gar(settings: Settings, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    run = subprocess.run(
        [GAR, *args],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert run.returncode == 0, f"gar {' '.join(args)}: {run.stdout}\n{run.stderr}"
    return run


def publish_intensity(settings: Settings) -> None:
    lay = worker_layout(settings)
    readings = [
        IntensityReading(zone, 120.0 + 80 * j, T0_MS - 600_000, "test", "average", False)
        for j, zone in enumerate(("GB", "US-MIDA-PJM"))
    ]
    items = [(r.zone.encode(), encode(intensity_record(r))) for r in readings]
    asyncio.run(produce(settings, lay.carbon_intensity, items))


def requests(first: int, n: int, tenants: tuple[str, ...]) -> list[tuple[bytes | None, bytes]]:
    out: list[tuple[bytes | None, bytes]] = []
    for i in range(first, first + n):
        tenant = tenants[i % len(tenants)]
        out.append((tenant.encode(), request_bytes(i, tenant, T0_MS + i * 1000)))
    return out


def render(url: str, out: Path, screenshot: Path) -> str:
    """The page's DOM after its scripts ran (headless Chromium), and a screenshot of it."""
    chromium = shutil.which(CHROMIUM)
    assert chromium, f"{CHROMIUM} not installed: scripts/bootstrap.sh installs it"
    base = [
        chromium,
        "--no-sandbox",
        "--disable-gpu",
        f"--user-data-dir={out / 'chromium-profile'}",
        "--virtual-time-budget=6000",  # lets the page fetch /status.json and render it
        "--window-size=1280,1500",
    ]
    dom = subprocess.run(
        [*base, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    subprocess.run(
        [*base, f"--screenshot={screenshot}", url], capture_output=True, timeout=120, check=True
    )
    return dom


def rows(dom: str, table_id: str) -> list[list[str]]:
    """The body rows of the rendered table ``table_id`` as cell texts."""
    m = re.search(rf'<table id="{table_id}">.*?<tbody>(.*?)</tbody>', dom, re.S)
    assert m, f"no table {table_id}"
    return [re.findall(r"<td[^>]*>(.*?)</td>", tr) for tr in re.findall(r"<tr>(.*?)</tr>", m[1])]


# Long on purpose: one worker serves every step an operator takes, in the order they take them.
def test_policy_override_tenants_and_status_page_on_a_real_worker(
    settings_factory: Any, catalog_path: Path, tmp_path: Path
) -> None:
    port = free_port()
    settings = worker_settings(
        settings_factory,
        catalog_path,
        web_enabled=True,
        web_port=port,
        data_dir=str(tmp_path / "faust"),
    )
    prefix = settings.topics.prefix
    create_worker_topics(settings)
    lay = worker_layout(settings)

    # Topics by prefix.
    listed = gar(settings, "topics", "list", "--prefix", prefix).stdout
    assert f"{lay.decisions}\t4" in listed and f"{lay.policy}\t1" in listed
    described = gar(settings, "topics", "describe", "--prefix", prefix).stdout
    assert "compact" in described and "zstd" in described

    # A policy with a per-tenant override, checked, published; no worker yet.
    policy_file = tmp_path / "policy.json"
    policy_file.write_text(
        json.dumps(
            {
                "floors": {"gsm8k": 0.6},
                "latency_slo_ms": 6000.0,
                "default_budget_g": 5.0,
                "tenant_overrides": {
                    "acme": {"version": "2", "floors": {"gsm8k": 0.9},
                             "latency_slo_ms": 1500.0, "budget_g": 1e-6},
                },
            }
        )
    )  # fmt: skip
    assert "valid policy.v1" in gar(settings, "policy", "validate", str(policy_file)).stdout
    out = gar(settings, "policy", "set", str(policy_file), "--wait", "0").stdout
    version = re.search(r"published version (\S+) at offset 0", out)
    assert version, out
    v = version[1]

    worker = start_worker(settings, tmp_path / "worker.log", env={"GAR_INFLUX__ENABLED": "false"})
    try:
        wait_log(worker, "ready: partitions [0, 1, 2, 3]", 90.0)
        assert f"status http://127.0.0.1:{port}/status" in worker.log()
        publish_intensity(settings)
        items = requests(0, 120, ("acme", "globex", "initech"))
        asyncio.run(produce(settings, lay.requests, items))
        outputs = read_outputs(settings, len(items))

        # The worker applied the override: acme's decisions carry its version, and the SLO,
        # floor and budget they were decided under (re-derived from the decision's context by
        # gar explain) are acme's.
        decisions = [orjson.loads(m.value) for m in outputs[lay.decisions]]
        assert len({d["request_id"] for d in decisions}) == 120
        for d in decisions:
            assert d["policy_version"] == (f"{v}+acme@2" if d["tenant"] == "acme" else v)
        for tenant, cap_ms in (("acme", 1500.0), ("globex", 6000.0)):
            rid = next(d["request_id"] for d in decisions if d["tenant"] == tenant)
            shown = json.loads(gar(settings, "explain", rid, "--tenant", tenant, "--json").stdout)
            assert shown["rederived"] and shown["latency_cap_ms"] == cap_ms, shown["findings"]
            if tenant == "acme":
                assert shown["floor"] >= 0.9 and shown["budget_g"] == 1e-6

        shown = json.loads(gar(settings, "policy", "show", "--json").stdout)
        assert shown["published"] and shown["config"]["version"] == v
        assert shown["config"]["tenant_overrides"]["acme"]["budget_g"] == 1e-6

        acme = json.loads(gar(settings, "tenants", "show", "acme", "--json", "--last", "3").stdout)
        assert acme["policy_version"] == f"{v}+acme@2" and acme["override"]
        assert acme["budget_g"] == 1e-6 and acme["latency_slo_ms"] == 1500.0
        assert acme["decisions_folded"] == 40 and acme["duals"]["lambda"] > 0.0
        assert acme["window_spend_g"] > 1e-6  # over its tiny budget: lambda rose
        assert [d["request_id"] for d in acme["last_decisions"]] == [
            "req-000111",
            "req-000114",
            "req-000117",
        ]
        globex = json.loads(gar(settings, "tenants", "show", "globex", "--json").stdout)
        assert globex["policy_version"] == v and globex["budget_g"] == 5.0
        assert globex["duals"]["lambda"] == 0.0
        # The balanced preset pools mu per requests partition: the scope's state is shown.
        assert globex["mu_scope"] == f"p{globex['partition']}"
        assert globex["scope"]["decisions_folded"] >= 40
        assert {d["dataset"] for d in decisions if d["tenant"] == "globex"} <= set(
            globex["scope"]["mu"]
        )
        text = gar(settings, "tenants", "show", "acme").stdout
        assert "(override)" in text and "% of 1e-06 g" in text
        assert f"scope p{acme['partition']}" in text

        # The status page, as a browser renders it.
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "status-page.png"
        dom = render(f"http://127.0.0.1:{port}/status", tmp_path, shot)
        assert 'data-loaded="1"' in dom, dom[:2000]
        assert [r[0] for r in rows(dom, "partitions")] == ["0", "1", "2", "3"]
        throughput = dict(r[:2] for r in rows(dom, "throughput"))
        assert throughput["decided"] == "120"
        policy = dict(r[:2] for r in rows(dom, "policy"))
        assert policy["version"] == v
        assert policy["tenant overrides"] == "acme"
        zones = {r[1]: r for r in rows(dom, "intensity")}
        assert zones["GB"][2] == "120" and zones["US-MIDA-PJM"][2] == "200"
        tenants = {r[0].rstrip(" *"): r for r in rows(dom, "tenants")}
        assert set(tenants) == {"acme", "globex", "initech"}
        assert tenants["acme"][0].endswith(" *")  # an override
        assert tenants["acme"][6].endswith("%") and tenants["acme"][7] == "40"
        latency = dict(r[:2] for r in rows(dom, "latency"))
        assert int(latency["decisions"]) == 120 and latency["p95"] != "–"
        assert [r[0] for r in rows(dom, "accuracy")] == ["gsm8k"]
        assert shot.stat().st_size > 10_000
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status.json", timeout=30) as r:
            snapshot = json.loads(r.read())
        assert snapshot["policy"]["version"] == v
        assert snapshot["throughput"]["decided"] == 120
        assert {t["tenant"] for t in snapshot["tenants"]} == {"acme", "globex", "initech"}

        # A second version merges a change in; history lists both with what changed.
        change = tmp_path / "change.json"
        globex_strict = {"tenant_overrides": {"globex": {"version": "1", "mode": "strict"}}}
        change.write_text(json.dumps(globex_strict))
        out = gar(settings, "policy", "set", str(change), "--merge", "--wait", "30").stdout
        assert "applied by the workers" in out, out
        history = json.loads(gar(settings, "policy", "history", "--json").stdout)
        assert [h["offset"] for h in history] == [0, 1]
        assert all(h["accepted"] for h in history)
        assert "tenant_overrides" in history[1]["changed"] and "version" in history[1]["changed"]
        after = json.loads(gar(settings, "policy", "show", "--json").stdout)["config"]
        assert set(after["tenant_overrides"]) == {"acme", "globex"}
        assert after["floors"] == {"gsm8k": 0.6}  # kept by --merge

        # Every decision re-derives, the override's too (the audit resolves its version).
        audit = subprocess.run(
            [GAR, "audit", "--no-outcomes"],
            env=settings_env(settings),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert audit.returncode == 0, audit.stdout + audit.stderr
        assert "120 re-derived, 0 mismatches" in audit.stdout

    finally:
        worker.stop()
    assert not list(Path(os.getcwd()).glob("*-data"))  # Faust's files went to the data dir
    assert (tmp_path / "faust").is_dir()


def test_topics_delete_by_prefix(settings: Settings) -> None:
    from streams.kafka.admin import list_topic_info

    create_worker_topics(settings)
    prefix = settings.topics.prefix
    before = asyncio.run(list_topic_info(settings, prefix))
    assert len(before) == 9  # 7 topics (contexts among them) + 2 dispatch topics of the catalog
    out = gar(settings, "topics", "delete", "--prefix", prefix, "--yes").stdout
    assert f"deleted {len(before)} topics" in out
    deadline = time.monotonic() + 30
    while asyncio.run(list_topic_info(settings, prefix)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert asyncio.run(list_topic_info(settings, prefix)) == []


def test_carbon_feed_hours_without_start_counts_from_the_data(settings: Settings) -> None:
    create_worker_topics(settings)
    out = gar(settings, "carbon-feed", "--zones", "GB,SG", "--hours", "3").stdout
    counts = dict(re.findall(r"│ (GB|SG)\s+│ (\d+)", out))
    assert counts == {"GB": "3", "SG": "3"}, out
