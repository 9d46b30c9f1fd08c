"""The price table that turns metered resource-seconds into US dollars.

Both figures of the cost model (DESIGN.md, "Cost model") use one table: the *user bill* (what a pay-per-use customer
pays) and the *resource cost* (what the platform spends on live instances). Pricing both at the same rates keeps them
comparable; only the bill adds the per-request fee.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_PRICES", "PriceError", "PriceTable"]


class PriceError(ValueError):
    """A price table is malformed: a missing or unknown key, or a price that is not a finite number >= 0."""


_PRICE_KEYS = ("per_request", "per_vcpu_s", "per_gib_s", "per_gpu_s")


@dataclass(frozen=True)
class PriceTable:
    """Prices in USD.

    ``per_request`` is charged per invocation of a function (a request through a three-function plan pays it three
    times, as it would on a serverless cloud). ``per_gpu_s`` is for one whole GPU for one second; an instance with a
    GPU share pays its fraction. ``source`` says where the figures come from.
    """

    per_request: float
    per_vcpu_s: float
    per_gib_s: float
    per_gpu_s: float
    source: str

    def __post_init__(self) -> None:
        for key in _PRICE_KEYS:
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise PriceError(f"price {key} must be a number of USD, got {value!r}")
            if not (math.isfinite(value) and value >= 0):
                raise PriceError(f"price {key} must be a finite number >= 0 USD, got {value!r}")
        if not isinstance(self.source, str):
            raise PriceError(f"price source must be a string, got {self.source!r}")

    @classmethod
    def from_toml(cls, path: str | Path) -> PriceTable:
        """Read a table from a TOML file with top-level keys ``per_request``, ``per_vcpu_s``, ``per_gib_s``,
        ``per_gpu_s`` (all required, USD) and an optional ``source`` string.

        Unknown keys are refused so that a misspelt price is not silently left at zero or at a default.
        """
        try:
            import tomllib
        except ImportError as e:  # Python 3.10
            raise PriceError("reading a price table needs Python 3.11 or newer (the tomllib module)") from e
        path = Path(path)
        try:
            data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as e:
            raise PriceError(f"cannot read price table {path}: {e}") from e
        except tomllib.TOMLDecodeError as e:
            raise PriceError(f"price table {path} is not valid TOML: {e}") from e
        allowed = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise PriceError(f"price table {path}: unknown key(s) {', '.join(unknown)}; expected {sorted(allowed)}")
        missing = [k for k in _PRICE_KEYS if k not in data]
        if missing:
            raise PriceError(f"price table {path}: missing key(s) {', '.join(missing)}")
        data.setdefault("source", f"price table file {path}")
        try:
            return cls(**data)
        except PriceError as e:
            raise PriceError(f"price table {path}: {e}") from None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, for status output and reports."""
        return asdict(self)


# Google Cloud Run, request-based billing ("CPU is only allocated during request processing"), Tier 1 regions, as
# published by Google Cloud on the "Cloud Run pricing" page (cloud.google.com/run/pricing). The CPU, memory and
# request figures were checked against a stored copy of that page on 2026-11-23; the GPU figure was not.
#   - requests: USD 0.40 per million                   -> 0.40e-6 per request
#   - CPU:      USD 0.000024 per vCPU-second
#   - memory:   USD 0.0000025 per GiB-second
#   - GPU:      USD 0.0001867 per NVIDIA L4 GPU-second, Tier 1, without zonal redundancy (about USD 0.67 per hour).
#     This is the least certain figure (take it as +-10%). Cloud Run has billed GPU services per instance rather
#     than per request; Shoal's user bill applies the rate to billed duration only, as a pay-per-use model.
# The free tier is ignored, and durations are not rounded up to Cloud Run's 100 ms billing increment.
DEFAULT_PRICES = PriceTable(
    per_request=0.40e-6,
    per_vcpu_s=0.000024,
    per_gib_s=0.0000025,
    per_gpu_s=0.0001867,
    source=(
        "as published by Google Cloud (Cloud Run pricing page, request-based billing, Tier 1 regions, "
        "NVIDIA L4 GPU without zonal redundancy); CPU, memory and request prices checked 2026-11, GPU price not; "
        "override with --prices FILE.toml"
    ),
)
