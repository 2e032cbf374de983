"""Shared test set-up: ``gpu``-marked tests skip cleanly where no GPU + RAPIDS is available."""

from __future__ import annotations

import pytest
from hypothesis import settings

from rapids_engage.backend import rapids_available, visible_gpu_count

# No example deadline: the suite runs two test processes on CI's 2 cores (pytest-xdist), and an
# example's time there says how busy the machine is, not whether the code is right.
settings.register_profile("suite", deadline=None)
settings.load_profile("suite")


def gpu_ready() -> bool:
    return rapids_available() and visible_gpu_count() > 0


def pytest_configure(config):  # noqa: ARG001 - pytest hook signature
    """Runs draw no plots unless a test asks (``--plots`` / ``run(plots=True)``): drawing is ~2 s a run and
    the plots are tested where they are asked for."""
    import rapids_engage.pipeline

    rapids_engage.pipeline.PLOTS_BY_DEFAULT = False


def pytest_collection_modifyitems(config, items):  # noqa: ARG001 - pytest hook signature
    if gpu_ready():
        return
    skip = pytest.mark.skip(reason="needs an NVIDIA GPU and the RAPIDS libraries (pip install 'rapids_engage[gpu]')")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)

