"""Routing policies behind one Protocol (``base``) and a name registry (``registry``)."""

from streams.core.policies.base import Policy, decide
from streams.core.policies.registry import find_policy, get_policy, policy_names, register_policy

__all__ = ["Policy", "decide", "find_policy", "get_policy", "policy_names", "register_policy"]
