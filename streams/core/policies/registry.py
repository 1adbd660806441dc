"""The policies by name: the built-in ones (GAR variants and baselines) are registered here,
so ``base`` (which they build on) knows none of them and nothing imports in a cycle."""

from __future__ import annotations

from collections.abc import Callable

from streams.core.errors import PolicyConfigError
from streams.core.policies.base import Policy
from streams.core.policies.baselines import BASELINES
from streams.core.policies.gar import GAR_POLICIES

_REGISTRY: dict[str, Callable[[], Policy]] = {}


def register_policy(name: str, factory: Callable[[], Policy]) -> None:
    if name in _REGISTRY:
        raise PolicyConfigError(f"policy {name!r} already registered")
    _REGISTRY[name] = factory


def get_policy(name: str) -> Policy:
    """The policy registered under ``name`` (raises ``PolicyConfigError`` if unknown)."""
    try:
        return _REGISTRY[name]()
    except KeyError:
        raise PolicyConfigError(
            f"unknown policy {name!r}; known: {', '.join(sorted(_REGISTRY))}"
        ) from None


def find_policy(name: str) -> Policy | None:
    """The policy registered under ``name``, or None (a record naming an unknown policy)."""
    factory = _REGISTRY.get(name)
    return None if factory is None else factory()


def policy_names() -> tuple[str, ...]:
    return tuple(sorted(_REGISTRY))


for _cls in (*GAR_POLICIES, *BASELINES):
    register_policy(_cls.name, _cls)
