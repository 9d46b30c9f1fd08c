"""Load: open-loop drivers and arrival generators (traces come with the granularity issue). Imports nothing of Shoal."""

from shoal.workload.driver import Outcome, drive, poisson_arrivals

__all__ = ["Outcome", "drive", "poisson_arrivals"]
