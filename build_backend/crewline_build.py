"""setuptools' PEP 517 backend, plus an opt-in compiled guard (decision 0047).

``CREWLINE_COMPILE=1`` compiles ``forge/guard`` with mypyc when a wheel is built
(``pip install .``, ``pip wheel .``, the container image): the build then needs mypy and a
C compiler, so mypy is asked for only then. An editable install refuses it: compiled
modules would sit beside the sources and shadow every later edit of them.
"""

from __future__ import annotations

import os

from setuptools import build_meta as _setuptools
from setuptools.build_meta import (
    build_sdist,
    build_wheel,
    get_requires_for_build_sdist,
    prepare_metadata_for_build_editable,
    prepare_metadata_for_build_wheel,
)

__all__ = [
    "build_editable",
    "build_sdist",
    "build_wheel",
    "get_requires_for_build_editable",
    "get_requires_for_build_sdist",
    "get_requires_for_build_wheel",
    "prepare_metadata_for_build_editable",
    "prepare_metadata_for_build_wheel",
]

COMPILE_VARIABLE = "CREWLINE_COMPILE"
# The mypy that compiles: the same major line the project type-checks with.
MYPYC_REQUIREMENT = "mypy>=1.18"


# True while setuptools runs setup.py only to learn its own requirements: mypy is not
# installed yet, so that run must not compile (setup.py imports this same module).
_finding_requirements = False


def compile_requested() -> bool:
    """Whether the environment asks for the compiled guard; any value but "0"/"1" is an
    error rather than a silent pure-Python build."""
    value = os.environ.get(COMPILE_VARIABLE, "0").strip()
    if value not in ("0", "1", ""):
        raise ValueError(f"{COMPILE_VARIABLE}={value!r}: set it to 1 (compile the guard) or 0")
    return value == "1" and not _finding_requirements


def get_requires_for_build_wheel(config_settings: dict[str, str] | None = None) -> list[str]:
    global _finding_requirements
    wanted = compile_requested()
    _finding_requirements = True
    try:
        requires = list(_setuptools.get_requires_for_build_wheel(config_settings))
    finally:
        _finding_requirements = False
    return [*requires, MYPYC_REQUIREMENT] if wanted else requires


def _refuse_compiled_editable() -> None:
    if compile_requested():
        raise RuntimeError(
            f"{COMPILE_VARIABLE}=1 with an editable install: the compiled guard would shadow "
            "the sources you edit. Unset it here, or build a wheel (pip install .)."
        )


def get_requires_for_build_editable(config_settings: dict[str, str] | None = None) -> list[str]:
    _refuse_compiled_editable()
    return list(_setuptools.get_requires_for_build_editable(config_settings))


def build_editable(
    wheel_directory: str,
    config_settings: dict[str, str] | None = None,
    metadata_directory: str | None = None,
) -> str:
    _refuse_compiled_editable()
    return str(_setuptools.build_editable(wheel_directory, config_settings, metadata_directory))
