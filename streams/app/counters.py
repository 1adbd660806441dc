"""Cumulative per-process counters of the worker (logged by the report timer)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Counters:
    completions: int = 0
    intensity_readings: int = 0
    policy_updates: int = 0
    dead_letters: int = 0
    batches: int = 0
    recovered_decisions: int = 0
    feedback_folded: int = 0  # graded completions folded into tenant states (policy feedback)
    extra: dict[str, int] = field(default_factory=dict)
    # dataset -> (graded completions, correct ones): realised accuracy on the status page
    graded: dict[str, tuple[int, int]] = field(default_factory=dict)

    def grade(self, dataset: str, correct: bool) -> None:
        n, ok = self.graded.get(dataset, (0, 0))
        self.graded[dataset] = (n + 1, ok + int(correct))
