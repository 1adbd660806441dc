"""Routing policies behind one Protocol and a name registry (see base.py)."""

from streams.core.policies.base import Policy, decide, get_policy, policy_names, register_policy

__all__ = ["Policy", "decide", "get_policy", "policy_names", "register_policy"]
