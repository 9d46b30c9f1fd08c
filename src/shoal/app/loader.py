"""Find an application in a Python file: ``path/to/file.py`` or ``path/to/file.py:name``."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from shoal.app.graph import App, AppError

__all__ = ["load_app"]


def load_app(ref: str) -> App:
    """Import ``FILE.py[:APP]`` and return the App. Without ``:APP``, the file must define exactly one App."""
    path_text, _, attr = ref.partition(":")
    path = Path(path_text)
    if not path.is_file():
        raise AppError(f"no such file: {path_text!r} (give FILE.py or FILE.py:APP)")
    name = f"shoal_user_{path.stem}_{abs(hash(path.resolve())) % 10**8}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise AppError(f"cannot import {path_text!r}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.path.insert(0, str(path.parent.resolve()))  # so the file can import its neighbours
    spec.loader.exec_module(module)
    if attr:
        app = getattr(module, attr, None)
        if not isinstance(app, App):
            raise AppError(f"{path_text!r} has no App named {attr!r}")
        return app
    apps = [v for v in vars(module).values() if isinstance(v, App)]
    if len(apps) != 1:
        found = ", ".join(a.name for a in apps) or "none"
        raise AppError(f"{path_text!r} defines {len(apps)} apps ({found}); name one as {path_text}:VARIABLE")
    return apps[0]
