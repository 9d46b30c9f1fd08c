"""The price table: documented defaults, TOML loading and clear errors on a bad file."""

from __future__ import annotations

from pathlib import Path

import pytest

from shoal.predict.prices import DEFAULT_PRICES, PriceError, PriceTable

GOOD = """
per_request = 2e-7
per_vcpu_s = 0.00001
per_gib_s = 0.000001
per_gpu_s = 0.0002
source = "my provider, June 2026"
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "prices.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_defaults_are_cloud_run_tier1_and_name_their_source() -> None:
    assert DEFAULT_PRICES.per_request == pytest.approx(0.40 / 1e6)
    assert DEFAULT_PRICES.per_vcpu_s == pytest.approx(0.000024)
    assert DEFAULT_PRICES.per_gib_s == pytest.approx(0.0000025)
    assert DEFAULT_PRICES.per_gpu_s == pytest.approx(0.0001867)
    assert "Cloud Run" in DEFAULT_PRICES.source and "--prices" in DEFAULT_PRICES.source
    assert DEFAULT_PRICES.to_dict()["per_vcpu_s"] == DEFAULT_PRICES.per_vcpu_s


def test_from_toml_reads_every_price(tmp_path: Path) -> None:
    t = PriceTable.from_toml(write(tmp_path, GOOD))
    assert t == PriceTable(2e-7, 0.00001, 0.000001, 0.0002, "my provider, June 2026")


def test_source_defaults_to_the_file(tmp_path: Path) -> None:
    p = write(tmp_path, "per_request = 0\nper_vcpu_s = 1\nper_gib_s = 1\nper_gpu_s = 1\n")
    t = PriceTable.from_toml(str(p))
    assert str(p) in t.source and t.per_request == 0


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (GOOD.replace("per_gib_s = 0.000001\n", ""), "missing key.*per_gib_s"),
        (GOOD.replace("per_vcpu_s = 0.00001", "per_vcpu_s = -0.00001"), "per_vcpu_s must be a finite number >= 0"),
        (GOOD.replace("per_gpu_s = 0.0002", "per_gpu_s = nan"), "per_gpu_s must be a finite number"),
        (GOOD.replace("per_gpu_s = 0.0002", 'per_gpu_s = "cheap"'), "per_gpu_s must be a number"),
        (GOOD + "per_gpu_hour = 1.0\n", "unknown key.*per_gpu_hour"),
        ("per_request = [", "not valid TOML"),
    ],
)
def test_bad_file_is_refused_with_a_message_naming_the_problem(tmp_path: Path, text: str, match: str) -> None:
    p = write(tmp_path, text)
    with pytest.raises(PriceError, match=match) as info:
        PriceTable.from_toml(p)
    assert str(p) in str(info.value)


def test_missing_file_is_a_price_error(tmp_path: Path) -> None:
    with pytest.raises(PriceError, match="cannot read price table"):
        PriceTable.from_toml(tmp_path / "absent.toml")


def test_constructor_validates_too() -> None:
    with pytest.raises(PriceError, match="per_request"):
        PriceTable(per_request=-1.0, per_vcpu_s=0.0, per_gib_s=0.0, per_gpu_s=0.0, source="x")
    with pytest.raises(PriceError, match="per_vcpu_s"):
        PriceTable(per_request=0.0, per_vcpu_s=True, per_gib_s=0.0, per_gpu_s=0.0, source="x")  # type: ignore[arg-type]
