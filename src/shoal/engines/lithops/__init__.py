"""The Lithops engine: training workers on any Lithops compute back end (AWS Lambda, Kubernetes, Knative, ...).

Lithops is used, never copied: this is the one module that calls it. See :mod:`shoal.engines.lithops.engine`.
"""

from shoal.engines.lithops.engine import LithopsEngine, localhost_config

__all__ = ["LithopsEngine", "localhost_config"]
