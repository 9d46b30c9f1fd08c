"""Pure decisions: observation in, decision out. No I/O and no clock reads; time is passed in as a number."""

from shoal.policy.autoscale import AutoscalerConfig, KpaAutoscaler, ScaleDecision, ScaleObservation
from shoal.policy.keepalive import IdleInstance, instances_to_retire

__all__ = [
    # autoscaling
    "AutoscalerConfig",
    "KpaAutoscaler",
    "ScaleDecision",
    "ScaleObservation",
    # keep-alive
    "IdleInstance",
    "instances_to_retire",
]
