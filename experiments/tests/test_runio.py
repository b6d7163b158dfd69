"""Files replaced whole: a write that fails leaves the previous file and no
temporary; the checkpoints of chartrain go the same way."""

import pytest
import torch

from experiments import chartrain, runio


def test_atomic_path_replaces_on_success(tmp_path):
    path = tmp_path / "sub" / "results.json"  # the folder is made
    with runio.atomic_path(path) as tmp:
        assert tmp.parent == path.parent and tmp != path
        tmp.write_text("new")
        assert not path.exists()  # nothing there until the block ends
    assert path.read_text() == "new"
    assert list(path.parent.iterdir()) == [path]


@pytest.mark.parametrize("failure", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_failure_inside_keeps_the_old_file_and_no_temporary(tmp_path, failure):
    path = tmp_path / "results.md"
    runio.write_atomic(path, "old, complete")
    with pytest.raises(type(failure)):
        with runio.atomic_path(path) as tmp:
            tmp.write_text("half writ")
            raise failure
    assert path.read_text() == "old, complete"
    assert list(tmp_path.iterdir()) == [path]


def test_failure_before_anything_is_written(tmp_path):
    path = tmp_path / "never.txt"
    with pytest.raises(ValueError):
        with runio.atomic_path(path):
            raise ValueError
    assert list(tmp_path.iterdir()) == []


def test_checkpoint_that_fails_to_save_keeps_the_previous_one(tmp_path):
    path = tmp_path / "run.pt"
    chartrain._save_checkpoint(str(path), {"epoch": 1, "weights": torch.ones(3)})
    unpicklable = {"epoch": 2, "weights": torch.zeros(3), "f": lambda: None}
    with pytest.raises(Exception, match="pickle"):
        chartrain._save_checkpoint(str(path), unpicklable)
    state = torch.load(path)
    assert state["epoch"] == 1 and torch.equal(state["weights"], torch.ones(3))
    assert list(tmp_path.iterdir()) == [path]


def test_write_atomic_writes_utf8_text_as_given(tmp_path):
    path = tmp_path / "t.csv"
    runio.write_atomic(path, "a,b\r\nü\n")
    assert path.read_bytes() == "a,b\r\nü\n".encode()
