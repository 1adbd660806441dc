"""Per-question correctness files (``query_id,dataset,model,params_b,correct,output_tokens_est``).

Several files are merged into one question x model matrix. A question is identified by
``(dataset, query_id)``; a model without an answer for a question has ``correct == -1`` there
(files cover different model sets). ``output_tokens_est`` may be empty or 0 (the RouterBench
export stores 0 for short multiple-choice answers); both become NaN and the scenario decides
what a missing length means.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from streams.data._csv import parse_float, read_rows
from streams.data.errors import DataFileError

CORRECTNESS_COLUMNS = ("query_id", "dataset", "model", "params_b", "correct", "output_tokens_est")


@dataclass(frozen=True)
class CorrectnessData:
    """Ground truth: question ``q`` of dataset ``datasets[dataset_idx[q]]`` answered by model ``m``.

    ``correct[q, m]`` is 1/0, or -1 when the model has no record for that question.
    ``output_tokens_est[q, m]`` is the answer length estimate in tokens, NaN when unknown.
    ``params_b[m]`` is NaN for API models whose size is not published.
    """

    datasets: tuple[str, ...]
    models: tuple[str, ...]
    params_b: npt.NDArray[np.float64]
    query_ids: tuple[str, ...]
    dataset_idx: npt.NDArray[np.int32]
    correct: npt.NDArray[np.int8]
    output_tokens_est: npt.NDArray[np.float64]
    sources: tuple[str, ...]

    @property
    def n_questions(self) -> int:
        return len(self.query_ids)

    def model_index(self, name: str) -> int:
        try:
            return self.models.index(name)
        except ValueError:
            raise KeyError(f"unknown model {name!r}; known: {list(self.models)}") from None

    def is_open(self, model: str) -> bool:
        """Open-weights models are the ones with a published parameter count."""
        return bool(np.isfinite(self.params_b[self.model_index(model)]))

    def coverage(self, model: str, dataset: str) -> float:
        """Fraction of the dataset's questions the model has a record for."""
        d = self.datasets.index(dataset)
        rows = self.dataset_idx == d
        return float(np.mean(self.correct[rows, self.model_index(model)] >= 0))

    def accuracy(self, model: str, dataset: str) -> float:
        """Mean correctness over the questions the model answered (NaN if none)."""
        d = self.datasets.index(dataset)
        col = self.correct[self.dataset_idx == d, self.model_index(model)]
        answered = col[col >= 0]
        return float(answered.mean()) if answered.size else float("nan")


def load_correctness(paths: Sequence[Path | str] | Path | str) -> CorrectnessData:
    """Load and merge correctness files; errors name the file and the line."""
    path_list = [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]
    if not path_list:
        raise ValueError("no correctness files given")
    records: list[tuple[str, str, str, int, float]] = []
    params: dict[str, float] = {}
    for path in path_list:
        records.extend(_read_file(path, params))
    return _to_matrix(records, params, [str(p) for p in path_list])


def _read_file(path: Path, params: dict[str, float]) -> Iterable[tuple[str, str, str, int, float]]:
    out: list[tuple[str, str, str, int, float]] = []
    for line, row in read_rows(path, CORRECTNESS_COLUMNS):
        query_id, dataset, model = row["query_id"].strip(), row["dataset"].strip(), row["model"]
        model = model.strip()
        if not query_id or not dataset or not model:
            raise DataFileError(path, "empty query_id, dataset or model", line)
        correct_text = row["correct"].strip()
        if correct_text not in ("0", "1"):
            raise DataFileError(
                path, f"column 'correct' must be 0 or 1, got {correct_text!r}", line
            )
        p_text = row["params_b"].strip()
        p = parse_float(path, line, "params_b", p_text) if p_text else float("nan")
        if p_text and p <= 0:
            raise DataFileError(path, f"column 'params_b' must be positive, got {p_text!r}", line)
        known = params.setdefault(model, p)
        if not (known == p or (known != known and p != p)):
            raise DataFileError(
                path, f"model {model!r} has params_b {p} here, {known} before", line
            )
        tok_text = row["output_tokens_est"].strip()
        tokens = parse_float(path, line, "output_tokens_est", tok_text) if tok_text else 0.0
        if tokens < 0:
            raise DataFileError(path, f"negative output_tokens_est {tok_text!r}", line)
        out.append((dataset, query_id, model, int(correct_text), tokens if tokens > 0 else np.nan))
    if not out:
        raise DataFileError(path, "no data rows")
    return out


def _to_matrix(
    records: list[tuple[str, str, str, int, float]], params: dict[str, float], sources: list[str]
) -> CorrectnessData:
    datasets = sorted({r[0] for r in records})
    models = sorted(params)
    questions = sorted({(r[0], r[1]) for r in records})
    q_index = {q: i for i, q in enumerate(questions)}
    m_index = {m: i for i, m in enumerate(models)}
    correct = np.full((len(questions), len(models)), -1, dtype=np.int8)
    tokens = np.full((len(questions), len(models)), np.nan, dtype=np.float64)
    for dataset, query_id, model, ok, tok in records:
        qi, mi = q_index[(dataset, query_id)], m_index[model]
        correct[qi, mi] = ok
        tokens[qi, mi] = tok
    d_index = {d: i for i, d in enumerate(datasets)}
    return CorrectnessData(
        datasets=tuple(datasets),
        models=tuple(models),
        params_b=np.array([params[m] for m in models], dtype=np.float64),
        query_ids=tuple(q[1] for q in questions),
        dataset_idx=np.array([d_index[q[0]] for q in questions], dtype=np.int32),
        correct=correct,
        output_tokens_est=tokens,
        sources=tuple(sources),
    )
