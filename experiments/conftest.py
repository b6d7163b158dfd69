"""Every test of the experiments (experiments/tests) runs with a cache of
its own and offline.

Here rather than in experiments/tests: inside the experiments package this
conftest imports as experiments.conftest, so it cannot shadow the `conftest`
module of tests/ when both folders are collected in one run."""

import urllib.error

import pytest

from experiments import corpora


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """No test reads or writes the user's cache, or goes online."""
    monkeypatch.setenv("FASTRNN_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("FASTRNN_DATA", raising=False)

    def offline(*args, **kwargs):
        raise urllib.error.URLError("tests run offline")
    monkeypatch.setattr(corpora.urllib.request, "urlopen", offline)
