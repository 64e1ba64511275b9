"""Where the shipped files are: inside an installed wheel, or the repository's top-level folders."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def shipped_dir(name: str) -> Path:
    """``checkpoints`` or ``conf``: the copy a wheel install carries inside the package
    (``icl_diffusion/_checkpoints``, ``_conf``), else the repository folder (source checkout, editable install)."""
    packaged = _PACKAGE / f"_{name}"
    return packaged if packaged.is_dir() else _PACKAGE.parent / name
