"""The pooled accuracy duals' scope states in the worker (``PolicyConfig.mu_pooled``).

A scope is a requests partition: every tenant on partition ``p`` shares scope ``p``'s mu (and
its surprise and warm-up) per dataset. Its state lives in the tenant map next to the tenants of
the partition, under the key ``"\\x00scope:<p>"`` (tenant names are printable, so no tenant has
it) and with that key as its ``tenant`` field, so it is checkpointed, restored and handed over
with the partition and its completions position is kept like a tenant's. The core sees it under
``SCOPE_BOOK``, named ``p<p>`` (what decisions record as ``mu_scope``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from streams.app.checkpoint import CheckpointedMap
from streams.core.policy_config import PolicyConfig
from streams.core.tenant import SCOPE_BOOK, TenantState

SCOPE_KEY_PREFIX = "\x00scope:"


def scope_key(partition: int) -> str:
    """The scope's key in the tenant map (and in the completions positions)."""
    return f"{SCOPE_KEY_PREFIX}{partition}"


def scope_name(partition: int) -> str:
    """The scope's name in decision records (``mu_scope``)."""
    return f"p{partition}"


def pooled_in(cfg: PolicyConfig) -> bool:
    """Whether any request decided under ``cfg`` can be priced with a scope's pooled mu (the
    global config's ``mu_pooled`` or a tenant override's mode preset's)."""
    return cfg.mu_pooled or any(cfg.for_tenant(t).mu_pooled for t in cfg.tenant_overrides)


def scope_for_core(tenants: CheckpointedMap[TenantState], partition: int) -> TenantState:
    """Scope ``partition``'s state as the core takes it under ``SCOPE_BOOK``."""
    st = tenants.get(scope_key(partition))
    name = scope_name(partition)
    return TenantState(name) if st is None else replace(st, tenant=name)


def store_scope(
    tenants: CheckpointedMap[TenantState],
    partition: int,
    states: Mapping[str, TenantState],
) -> None:
    """Put the scope state the core returned under ``SCOPE_BOOK`` (if any) back with its
    partition, to be checkpointed with it."""
    st = states.get(SCOPE_BOOK)
    if st is not None:
        key = scope_key(partition)
        tenants.put(key, replace(st, tenant=key), partition)
