"""Every test of the experiments runs with a cache of its own and offline."""

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
