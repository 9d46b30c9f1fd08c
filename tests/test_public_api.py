"""The public surface changes only on purpose (as httpx's test_exported_members does)."""

import shoal
import shoal.testing


def test_top_level_names():
    assert sorted(shoal.__all__) == sorted(
        [
            "SLO",
            "App",
            "AppError",
            "ArraySpec",
            "FunctionConfig",
            "InputError",
            "Plan",
            "PlanError",
            "Resources",
            "SpecError",
            "Stage",
            "__version__",
            "local",
        ]
    )
    for name in shoal.__all__:
        assert getattr(shoal, name) is not None


def test_testing_helpers_are_public():
    for name in ("ServerProcess", "wait_until", "free_port"):
        assert name in shoal.testing.__all__
