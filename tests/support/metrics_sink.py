"""A metrics sink that keeps the lines it was given (and can fail the first writes)."""

from __future__ import annotations


class RecordingSink:
    def __init__(self, fail_times: int = 0) -> None:
        self.batches: list[list[str]] = []
        self.fail_times = fail_times
        self.calls = 0
        self.closed = False

    def write_lines(self, lines: list[str]) -> None:
        self.calls += 1
        if self.calls <= self.fail_times:
            raise ConnectionError("store down")
        self.batches.append(list(lines))

    def close(self) -> None:
        self.closed = True

    @property
    def lines(self) -> list[str]:
        return [x for b in self.batches for x in b]
