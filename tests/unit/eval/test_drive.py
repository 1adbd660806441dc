from __future__ import annotations

from streams.core import IntensityReading, Request
from streams.eval.drive import compare_decisions, completion_for, offline_records, trace_events
from streams.eval.scenario import Scenario


def test_events_put_each_reading_before_its_requests(small_scenario: Scenario) -> None:
    latest: dict[str, int] = {}
    n_requests = 0
    for topic, value in trace_events(small_scenario):
        if topic == "carbon-intensity":
            assert isinstance(value, IntensityReading)
            latest[value.zone] = value.ts_ms
        else:
            assert isinstance(value, Request)
            n_requests += 1
            for region in small_scenario.catalog.regions:
                assert 0 <= value.ts_ms - latest[region.zone] < 3_600_000
    assert n_requests == len(small_scenario.trace)


def test_completion_reports_ground_truth(small_scenario: Scenario) -> None:
    req, truth = next(small_scenario.trace.items())
    model = next(iter(truth.correct_by_model))
    region = small_scenario.catalog.regions[0].name
    c = completion_for(small_scenario, req.request_id, model, region)
    assert c.correct == truth.correct_by_model[model]
    assert c.output_tokens == truth.output_tokens_by_model[model]
    assert c.ts_ms >= req.ts_ms and c.energy_j is not None and c.energy_j > 0


def test_compare_finds_agreement_mismatch_and_duplicates(small_scenario: Scenario) -> None:
    offline = offline_records(small_scenario, "gar-pd")
    assert len(offline) == len(small_scenario.trace)
    same = compare_decisions(offline, [dict(r) for r in offline])
    assert same.identical and same.agree_fraction == 1.0
    online = [dict(r) for r in offline[:-1]]
    other = next(r.name for r in small_scenario.catalog.regions if r.name != online[0]["region"])
    online[0]["region"] = other
    online.append(dict(online[1]))  # an at-least-once re-delivery
    cmp = compare_decisions(offline, online)
    assert not cmp.identical
    assert cmp.agree == len(offline) - 2
    assert cmp.mismatches[0]["request_id"] == offline[0]["request_id"]
    assert cmp.missing_online == [offline[-1]["request_id"]]
    assert cmp.duplicate_online == {offline[1]["request_id"]: 2}


def test_offline_run_without_feedback_is_repeatable(small_scenario: Scenario) -> None:
    a = offline_records(small_scenario, "gar-pd")
    b = offline_records(small_scenario, "gar-pd")
    assert compare_decisions(a, b).identical
