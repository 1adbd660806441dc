"""Realised correctness into the tenant state (pure): ``fold_feedback``.

gar-pd's mu dual steps on the *estimated* accuracy of each choice, which keeps every decision
re-derivable from its record. Estimates lag the truth (weak priors, a lucky or unlucky run
of answers), so a floor met by the estimates can be missed by the answers actually served.
``fold_feedback`` adds, per graded completion, ``feedback_weight x (correct - p)`` to the
tenant's ``surprise`` for that dataset, where ``p`` is the serving model's scoring accuracy in
the context in force when the completion is handled (before the estimators fold it in). The
tenant's next gar-pd decision on that dataset counts ``p_chosen + surprise`` in its mu step and
resets the surprise to 0; the record's ``accuracy_est`` is that sum, so record-only replay and
the dual chain (``check_chain``) stay exact, and over time mu integrates realised accuracy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

from streams.core.context import RoutingContext
from streams.core.errors import TelemetryError
from streams.core.inputs import Completion
from streams.core.tenant import SCOPE_BOOK, TenantState


def fold_feedback(
    ctx: RoutingContext,
    tenant_states: Mapping[str, TenantState],
    completions: Iterable[Completion],
) -> dict[str, TenantState]:
    """New states of the tenants whose graded completions are in ``completions`` (in order).
    Nothing changes when ``ctx.config.feedback_weight`` is 0. Unknown models raise
    ``TelemetryError``; unknown datasets count toward the ``"*"`` row, as requests do."""
    weight = ctx.config.feedback_weight
    if weight == 0.0:
        return {}
    cat = ctx.catalog
    acc = ctx.acc_score.tolist()
    pending: dict[str, dict[str, float]] = {}
    for c in completions:
        if c.correct is None:
            continue
        mi = cat.model_index.get(c.model)
        if mi is None:
            raise TelemetryError(f"completion for unknown model {c.model!r}")
        di = cat.dataset_idx(c.dataset)
        holder = SCOPE_BOOK if ctx.config.mu_pooled else c.tenant
        sur = pending.get(holder)
        if sur is None:
            st = tenant_states.get(holder)
            sur = pending[holder] = dict(st.surprise) if st is not None else {}
        ds = cat.datasets[di]
        sur[ds] = sur.get(ds, 0.0) + weight * ((1.0 if c.correct else 0.0) - acc[mi][di])
    return {
        t: replace(tenant_states.get(t) or TenantState(t), surprise=sur)
        for t, sur in pending.items()
    }
