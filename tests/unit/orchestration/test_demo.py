"""The demo's summary tables."""

from __future__ import annotations

T0_MS = 1_672_531_200_000


def test_demo_dataset_table_scores_each_dataset_against_its_floor() -> None:
    from rich.console import Console

    from streams.orchestration.demo import dataset_table

    decs = [
        {"dataset": "gsm8k", "floor": 0.8, "reason": "optimal"},
        {"dataset": "gsm8k", "floor": 0.8, "reason": "infeasible_fallback"},
        {"dataset": "mbpp", "floor": 0.5, "reason": "optimal"},
        {"dataset": "winogrande", "floor": 0.7, "reason": "optimal"},
    ]
    comp = [
        {"dataset": "gsm8k", "correct": True},
        {"dataset": "gsm8k", "correct": False},
        {"dataset": "mbpp", "correct": None},
        *({"dataset": "winogrande", "correct": c} for c in (True, True, True, False)),
    ]
    console = Console(width=200, record=True)
    console.print(dataset_table(decs, comp))
    rows = {
        line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]]
        for line in console.export_text().splitlines()
        if line.startswith("│") and any(d in line for d in ("gsm8k", "mbpp", "winogrande"))
    }
    # tolerance: max(0.5 point, one binomial standard error at the floor for the graded count)
    assert rows["gsm8k"] == ["2", "0.800", "0.500", "-30.0", "28.3", "no", "1"]
    assert rows["mbpp"] == ["1", "0.500", "n/a", "n/a", "n/a", "n/a", "0"]
    assert rows["winogrande"] == ["1", "0.700", "0.750", "+5.0", "22.9", "yes", "0"]
