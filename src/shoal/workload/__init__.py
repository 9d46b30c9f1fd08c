"""Load: open-loop drivers, arrival generators (``generators``) and trace readers (``traces``, ``source``).
Imports nothing of Shoal."""

from shoal.workload.driver import Outcome, drive, poisson_arrivals, summarize

__all__ = ["Outcome", "drive", "poisson_arrivals", "summarize"]
