"""GAR routing core: pure, typed numpy (scipy only for the oracle). No faust, aiokafka,
influxdb_client, asyncio, clock reads or I/O (``Catalog.load``/``dump`` are the one file
convenience, called by the shell).

Contract notes (differences from the team brief's wording):
* ``TenantState`` duals are ``lam`` (carbon), ``mu`` (dict dataset -> accuracy dual) and ``nu``
  (latency); decision records spell them ``lambda``/``mu``/``nu``.
* ``decide_batch`` returns the new states of the tenants present in the batch only; merge them
  into your table. Requests must pass ``RoutingContext.validate`` (or use ``split_valid``);
  invalid ones make ``decide_batch`` raise ``RequestError``.
* Estimator snapshots, floors, intensity staleness and the carbon normaliser are resolved in
  ``RoutingContext.build(catalog, config, estimators, intensity)``; rebuild it when any input
  changes (cheap: O(models x datasets + candidates)).
"""

from streams.core.catalog import BetaPrior, Catalog, ModelSpec, RegionSpec
from streams.core.context import Estimates, RoutingContext
from streams.core.decision import RECORD_FORMAT, Decision, Reason
from streams.core.errors import (
    CatalogError,
    CoreError,
    IntensityError,
    PolicyConfigError,
    RequestError,
    StateError,
    TelemetryError,
)
from streams.core.estimators import EstimatorSnapshot, EstimatorState
from streams.core.feedback import fold_feedback
from streams.core.inputs import Completion, Request
from streams.core.intensity import IntensityInForce, IntensityReading, IntensityView
from streams.core.oracle import ORACLES, OracleError, OracleResult, oracle_lp, oracle_perfect
from streams.core.policies import (
    Policy,
    decide,
    find_policy,
    get_policy,
    policy_names,
    register_policy,
)
from streams.core.policy_config import MODES, Mode, PolicyConfig
from streams.core.replay import (
    Rederived,
    ReplayError,
    check_chain,
    compare_records,
    rederive,
    rederive_record,
)
from streams.core.tenant import Duals, TenantState

__all__ = [
    "MODES",
    "ORACLES",
    "RECORD_FORMAT",
    "BetaPrior",
    "Catalog",
    "CatalogError",
    "Completion",
    "CoreError",
    "Decision",
    "Duals",
    "Estimates",
    "EstimatorSnapshot",
    "EstimatorState",
    "IntensityError",
    "IntensityInForce",
    "IntensityReading",
    "IntensityView",
    "Mode",
    "ModelSpec",
    "OracleError",
    "OracleResult",
    "Policy",
    "PolicyConfig",
    "PolicyConfigError",
    "Reason",
    "Rederived",
    "RegionSpec",
    "ReplayError",
    "Request",
    "RequestError",
    "RoutingContext",
    "StateError",
    "TelemetryError",
    "TenantState",
    "check_chain",
    "compare_records",
    "decide",
    "find_policy",
    "fold_feedback",
    "get_policy",
    "oracle_lp",
    "oracle_perfect",
    "policy_names",
    "rederive",
    "rederive_record",
    "register_policy",
]
