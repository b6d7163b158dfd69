"""The texts the experiments train on, and where they come from.

    zen                the Zen of Python (`import this`), about 850 characters:
                       every Python installation carries it, so the main job
                       needs no download. The scale of the classic "paragraph"
                       study of RNN, LSTM and GRU.
    tinyshakespeare    char-rnn's input.txt (1,115,394 bytes), looked up in
                       FASTRNN_DATA, then in the cache directory, then
                       downloaded into the cache when online.
    any UTF-8 file     --text PATH.

The cache directory is $FASTRNN_CACHE, else $XDG_CACHE_HOME/fastrnn, else
~/.cache/fastrnn (the music experiment keeps its piano rolls there too).
"""

import codecs
import contextlib
import importlib
import io
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

from .runio import atomic_path

__all__ = [
    "CORPORA",
    "CorpusUnavailable",
    "cache_dir",
    "zen_of_python",
    "tinyshakespeare",
    "load_text",
    "split_text",
]

TINYSHAKESPEARE_URL = (
    "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
)
TINYSHAKESPEARE_BYTES = 1_115_394
# Names the file may have in FASTRNN_DATA: ours, and char-rnn's own.
TINYSHAKESPEARE_NAMES = (
    "tinyshakespeare.txt",
    "input.txt",
    os.path.join("tinyshakespeare", "input.txt"),
)

CORPORA = ("zen", "tinyshakespeare")


class CorpusUnavailable(RuntimeError):
    """A corpus that is neither on this machine nor downloadable from here."""


def cache_dir():
    if os.environ.get("FASTRNN_CACHE"):
        return Path(os.environ["FASTRNN_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "fastrnn"


def zen_of_python():
    """The Zen of Python. `this` prints it when first imported and keeps it
    only rot13-encoded (this.s); the print is swallowed, not shown."""
    if "this" in sys.modules:
        this = sys.modules["this"]
    else:
        with contextlib.redirect_stdout(io.StringIO()):
            this = importlib.import_module("this")
    return codecs.decode(this.s, "rot13")


def _read_utf8(path):
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e})") from None


def _check_size(path):
    size = os.path.getsize(path)
    if size != TINYSHAKESPEARE_BYTES:
        raise CorpusUnavailable(
            f"{path} has {size:,} bytes; char-rnn's Tiny Shakespeare has "
            f"{TINYSHAKESPEARE_BYTES:,}. Point FASTRNN_DATA or --text at the right file."
        )
    return path


def _in_fastrnn_data():
    data = os.environ.get("FASTRNN_DATA")
    if not data:
        return None
    if os.path.isfile(data):
        return _check_size(data)
    for name in TINYSHAKESPEARE_NAMES:
        path = os.path.join(data, name)
        if os.path.isfile(path):
            return _check_size(path)
    raise CorpusUnavailable(
        f"FASTRNN_DATA={data} holds none of {', '.join(TINYSHAKESPEARE_NAMES)}."
    )


def _download(url, path, timeout):
    """Into a temporary file first, so an interrupted download leaves no
    truncated file in the cache."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as r:
            while chunk := r.read(1 << 16):
                out.write(chunk)
        _check_size(tmp)


def tinyshakespeare(download=True, timeout=30):
    """Path of Tiny Shakespeare: FASTRNN_DATA (a file, or a folder holding
    tinyshakespeare.txt or input.txt), else the cache, else downloaded into
    the cache. Raises CorpusUnavailable, saying how to provide it, when it is
    nowhere here and cannot be downloaded."""
    found = _in_fastrnn_data()
    if found:
        return found
    cached = cache_dir() / "tinyshakespeare.txt"
    if cached.is_file():
        return str(_check_size(cached))
    why = "downloading is switched off"
    if download:
        try:
            _download(TINYSHAKESPEARE_URL, cached, timeout)
            return str(cached)
        except (urllib.error.URLError, OSError, CorpusUnavailable) as e:
            why = f"download from {TINYSHAKESPEARE_URL} failed: {e}"
    raise CorpusUnavailable(
        f"Tiny Shakespeare is not on this machine and {why}.\n"
        "Provide char-rnn's input.txt (1,115,394 bytes) in one of these ways:\n"
        "  FASTRNN_DATA=/path/to/tinyshakespeare.txt  (or a folder holding "
        "tinyshakespeare.txt or input.txt)\n"
        "  --text /path/to/input.txt\n"
        f"  or put it at {cached}"
    )


def load_text(text=None, corpus="zen"):
    """(name, text): the file `text` if given, else the named corpus."""
    if text is not None:
        return Path(text).name, _read_utf8(text)
    if corpus == "zen":
        return "zen", zen_of_python()
    if corpus == "tinyshakespeare":
        return "tinyshakespeare", _read_utf8(tinyshakespeare())
    raise ValueError(f"unknown corpus {corpus!r}; choose from {', '.join(CORPORA)}")


def split_text(text, val_fraction=0.2):
    """(train, val): the first and the last part of the text. Cut before any
    window is made, so that no validation character is ever trained on."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    cut = int(round(len(text) * (1 - val_fraction)))
    return text[:cut], text[cut:]
