"""Extension modules for setuptools; everything else is in pyproject.toml.

With ``CREWLINE_COMPILE=1`` the guard (``forge/guard``) is compiled with mypyc: the
same sources, about 1.5x faster per screened write (decision 0047). Without it the
build is pure Python, as every checkout and editable install is.
"""

from __future__ import annotations

import sys
from pathlib import Path

from setuptools import setup

sys.path.insert(0, str(Path(__file__).parent / "build_backend"))
from crewline_build import compile_requested

COMPILED_PACKAGE = "forge/guard"


def ext_modules() -> list[object]:
    if not compile_requested():
        return []
    from mypyc.build import mypycify

    sources = sorted(str(path) for path in Path(COMPILED_PACKAGE).glob("*.py"))
    return list(mypycify(sources, opt_level="3"))


setup(ext_modules=ext_modules())
