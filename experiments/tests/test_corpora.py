"""The texts the experiments train on: the built-in Zen of Python, UTF-8
files, and Tiny Shakespeare from FASTRNN_DATA, the cache or a download."""

import os
import sys
from pathlib import Path

import pytest

from experiments import chartrain, compare, corpora

REPO = Path(__file__).resolve().parents[2]
URLOPEN = corpora.urllib.request.urlopen  # before the fixture takes the network away
SHARED_TINYSHAKESPEARE = REPO.parent / "shared" / "data" / "tinyshakespeare.txt"


def test_zen_is_built_in_and_not_printed(monkeypatch, capsys):
    monkeypatch.delitem(sys.modules, "this", raising=False)
    text = corpora.zen_of_python()
    assert capsys.readouterr().out == ""
    assert text.startswith("The Zen of Python, by Tim Peters")
    assert "Beautiful is better than ugly." in text
    assert 800 <= len(text) <= 900


def test_split_keeps_validation_apart():
    train, val = corpora.split_text("abcdefghij" * 10, 0.2)
    assert train + val == "abcdefghij" * 10 and len(val) == 20
    starts = chartrain.window_starts(len(train), 7, 1)
    # the last training window ends inside the training part
    assert int(starts[-1]) + 7 + 1 == len(train)


def test_text_file(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("héllo wörld\n" * 3, encoding="utf-8")
    assert corpora.load_text(str(path)) == ("t.txt", "héllo wörld\n" * 3)
    path.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ValueError, match="not UTF-8"):
        corpora.load_text(str(path))


@pytest.mark.skipif(not SHARED_TINYSHAKESPEARE.is_file(), reason="no ../shared/data here")
@pytest.mark.parametrize("where", ["folder", "file"])
def test_tinyshakespeare_from_shared_data(monkeypatch, where):
    path = SHARED_TINYSHAKESPEARE
    monkeypatch.setenv("FASTRNN_DATA", str(path.parent if where == "folder" else path))
    name, text = corpora.load_text(corpus="tinyshakespeare")
    assert name == "tinyshakespeare"
    assert len(text.encode("utf-8")) == corpora.TINYSHAKESPEARE_BYTES
    assert text.startswith("First Citizen:")


@pytest.mark.skipif(not SHARED_TINYSHAKESPEARE.is_file(), reason="no ../shared/data here")
def test_tinyshakespeare_download_goes_to_the_cache(monkeypatch):
    """Online, it is fetched once into the cache (here from a file:// URL)."""
    monkeypatch.setattr(corpora.urllib.request, "urlopen", URLOPEN)
    monkeypatch.setattr(corpora, "TINYSHAKESPEARE_URL", SHARED_TINYSHAKESPEARE.as_uri())
    path = corpora.tinyshakespeare()
    assert Path(path) == corpora.cache_dir() / "tinyshakespeare.txt"
    assert os.path.getsize(path) == corpora.TINYSHAKESPEARE_BYTES
    assert list(corpora.cache_dir().iterdir()) == [Path(path)]  # no .part left behind
    monkeypatch.setattr(corpora, "TINYSHAKESPEARE_URL", "file:///nonexistent")
    assert corpora.tinyshakespeare() == path  # from the cache now


def test_tinyshakespeare_offline_says_how_to_provide_it(tmp_path, capsys):
    with pytest.raises(corpora.CorpusUnavailable) as e:
        corpora.tinyshakespeare()
    message = str(e.value)
    assert "FASTRNN_DATA" in message and "--text" in message and "1,115,394" in message
    rc = compare.main(["--corpus", "tinyshakespeare", "--out", str(tmp_path / "o")])
    assert rc == 2 and "FASTRNN_DATA" in capsys.readouterr().err


def test_wrong_tinyshakespeare_file_is_refused(tmp_path, monkeypatch):
    (tmp_path / "input.txt").write_text("too short")
    monkeypatch.setenv("FASTRNN_DATA", str(tmp_path))
    with pytest.raises(corpora.CorpusUnavailable, match="1,115,394"):
        corpora.tinyshakespeare()
