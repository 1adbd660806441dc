"""Map a correctness-data model to a measured ML.ENERGY serving profile.

No single source measures the same models everywhere, so every model is mapped by parameter
class (the data README's rule, stated in every report that uses it):

1. Dense models map to dense profiles, mixture-of-experts models to MoE profiles (falling back
   to all profiles if none of the kind exists).
2. Nearest total parameter count, measured as ``|log(profile / model)|`` (7B->8B is as close
   as 35B->40B). Ties go to the profile whose name is most similar (same family), then by name.
3. Within the chosen profile model: the preferred task (``lm-arena-chat``: chat-length answers),
   the preferred GPU (H100 by default), and the batch size an operator would run: the most
   energy-efficient configuration whose p95 inter-token latency stays within ``itl_p95_cap_ms``.

Per-token figures (documented in docs/evaluation.md):

* ``energy_per_output_token_j`` is the row's measured ``energy_per_token_j`` (all GPUs, at the
  chosen batch). It already carries the benchmark prompts' prefill, amortised.
* ``energy_per_input_token_j`` is an estimate: prefill costs ``2 x active_params`` FLOPs per
  token, run at ``prefill_flops_per_j`` (default 3.5e11 FLOP/J: an H100 at ~50% of its
  989 dense-BF16 TFLOP/s at ~700 W x 2 for overheads), so 8B -> ~0.05 J, 70B -> ~0.4 J per token.
* ``ttft_ms`` = one median ITL + the prefill time of ``ttft_prompt_tokens`` at
  ``prefill_tokens_per_s_per_gpu_at_1b`` (2.5e5: the same ~50% of 989 TFLOP/s) scaled by
  active params and GPU count.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from difflib import SequenceMatcher
from typing import Any

from streams.data.energy import EnergyProfile

_MOE_PATTERNS = (re.compile(r"\d+x\d+b", re.I), re.compile(r"-a\d+(\.\d+)?b", re.I))
_MOE_NAMES = ("mixtral", "deepseek-v", "gpt-oss", "maverick", "scout")


def looks_moe(model: str) -> bool:
    """Mixture-of-experts by name: ``8x7B``, ``-A3B``, or a known MoE family."""
    lowered = model.lower()
    return any(p.search(lowered) for p in _MOE_PATTERNS) or any(n in lowered for n in _MOE_NAMES)


@dataclass(frozen=True)
class MappingOptions:
    task: str = "lm-arena-chat"
    gpu_model: str = "H100"
    itl_p95_cap_ms: float = 50.0
    prefill_flops_per_j: float = 3.5e11
    prefill_tokens_per_s_per_gpu_at_1b: float = 2.5e5
    ttft_prompt_tokens: int = 256


@dataclass(frozen=True)
class EnergyMapping:
    """Which measured row stands in for ``model`` and the per-token figures derived from it."""

    model: str
    params_b: float
    is_moe: bool
    profile_model_id: str
    profile_total_params_b: float
    profile_active_params_b: float
    task: str
    gpu_model: str
    num_gpus: int
    max_num_seqs: int
    avg_batch_size: float
    source_line: int
    energy_per_output_token_j: float
    energy_per_input_token_j: float
    itl_median_ms: float
    itl_p95_ms: float
    ttft_ms: float
    rule: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _short(name: str) -> str:
    return name.rsplit("/", 1)[-1].lower()


def _pick_profile_model(
    model: str, params_b: float, moe: bool, profiles: list[EnergyProfile]
) -> str:
    same_kind = [p for p in profiles if p.is_moe == moe] or profiles
    by_model: dict[str, float] = {p.model_id: p.total_params_b for p in same_kind}

    def key(item: tuple[str, float]) -> tuple[float, float, str]:
        name, total = item
        distance = round(abs(math.log(total / params_b)), 9)
        similarity = SequenceMatcher(None, _short(name), _short(model)).ratio()
        return (distance, -similarity, name)

    return min(by_model.items(), key=key)[0]


def _pick_row(rows: list[EnergyProfile], opts: MappingOptions) -> EnergyProfile:
    # Preferred task and GPU narrow the rows, but never to nothing.
    rows = [r for r in rows if r.task == opts.task] or rows
    rows = [r for r in rows if r.gpu_model == opts.gpu_model] or rows
    within = [r for r in rows if r.p95_itl_ms <= opts.itl_p95_cap_ms]
    if within:
        return min(within, key=lambda r: (r.energy_per_token_j, r.line))
    return min(rows, key=lambda r: (r.p95_itl_ms, r.line))


def map_model(
    model: str,
    params_b: float,
    profiles: list[EnergyProfile],
    opts: MappingOptions | None = None,
    moe: bool | None = None,
) -> EnergyMapping:
    if not profiles:
        raise ValueError("no energy profiles to map to")
    if not params_b > 0:
        raise ValueError(f"model {model!r} has no parameter count; cannot map it")
    opts = opts or MappingOptions()
    is_moe = looks_moe(model) if moe is None else moe
    profile_id = _pick_profile_model(model, params_b, is_moe, profiles)
    row = _pick_row([p for p in profiles if p.model_id == profile_id], opts)
    prefill_j = 2.0 * row.active_params_b * 1e9 / opts.prefill_flops_per_j
    prefill_tok_s = (
        opts.prefill_tokens_per_s_per_gpu_at_1b * row.num_gpus / max(row.active_params_b, 0.1)
    )
    ttft_ms = row.median_itl_ms + 1000.0 * opts.ttft_prompt_tokens / prefill_tok_s
    kind = "MoE" if is_moe else "dense"
    return EnergyMapping(
        model=model,
        params_b=params_b,
        is_moe=is_moe,
        profile_model_id=row.model_id,
        profile_total_params_b=row.total_params_b,
        profile_active_params_b=row.active_params_b,
        task=row.task,
        gpu_model=row.gpu_model,
        num_gpus=row.num_gpus,
        max_num_seqs=row.max_num_seqs,
        avg_batch_size=row.avg_batch_size,
        source_line=row.line,
        energy_per_output_token_j=row.energy_per_token_j,
        energy_per_input_token_j=prefill_j,
        itl_median_ms=row.median_itl_ms,
        itl_p95_ms=row.p95_itl_ms,
        ttft_ms=ttft_ms,
        rule=(
            f"{kind} {params_b:g}B -> nearest-{kind} {row.model_id} ({row.total_params_b:g}B); "
            f"{row.task} on {row.num_gpus}x{row.gpu_model}, max batch {row.max_num_seqs} "
            f"(lowest J/token with p95 ITL <= {opts.itl_p95_cap_ms:g} ms)"
        ),
    )
