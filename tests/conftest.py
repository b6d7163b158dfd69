"""pytest hooks and fixtures of the fastrnn tests; the helpers the tests
share are in helpers.py."""

import pytest
import torch

from helpers import SEED


def pytest_collection_modifyitems(config, items):
    """Tests marked `cuda` (pyproject.toml declares the mark) are skipped
    where torch has no GPU."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="CUDA is not available")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    """Every test starts from the same RNG state, so failures reproduce."""
    torch.manual_seed(SEED)
