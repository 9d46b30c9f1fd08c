"""Reading, writing and validating profile files (schema: ``shoal.predict.profile``)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from shoal.predict.fields import ProfileError
from shoal.predict.profile import Profile

__all__ = ["validate_profile", "read_profile", "write_profile"]


def validate_profile(doc: Any) -> Profile:
    """Check a decoded profile document; returns the :class:`Profile`, or raises :class:`ProfileError`."""
    return Profile.from_dict(doc)


def read_profile(path: str | os.PathLike[str]) -> Profile:
    """Read and validate a profile file."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text())
    except OSError as e:
        raise ProfileError(f"cannot read profile {str(p)!r}: {e.strerror or e}") from None
    except json.JSONDecodeError as e:
        raise ProfileError(f"{str(p)!r} is not JSON: {e}") from None
    try:
        return Profile.from_dict(doc)
    except ProfileError as e:
        raise ProfileError(f"{p}: {e}") from None


def write_profile(profile: Profile, path: str | os.PathLike[str]) -> Path:
    """Write ``profile`` as JSON (creating the directory), after checking that it reads back."""
    Profile.from_dict(profile.to_dict())
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(profile.dumps())
    tmp.replace(p)
    return p
