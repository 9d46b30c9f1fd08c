"""The Ray engine: training workers as Ray tasks on a local or remote cluster. The one module that calls Ray for
training; see :mod:`shoal.engines.ray.engine`."""

from shoal.engines.ray.engine import RayEngine

__all__ = ["RayEngine"]
