import io

import pytest

from sew.data import rejects
from sew.data.rejects import BadItemError, RejectLog, read_rejected


def test_default_warns_once_per_item_and_writes_tsv(tmp_path):
    stream = io.StringIO()
    log = RejectLog(stream=stream)
    log.reject("a.wav", rejects.EMPTY, 3, "0 bytes")
    log.reject("b.wav", rejects.TOO_SHORT, None, "100 samples")
    log.reject("a.wav", rejects.EMPTY, 3, "0 bytes")  # the same item again: not repeated
    log.note("resampled", 2)
    lines = stream.getvalue().splitlines()
    assert lines == ["warning: skipped a.wav:3: empty audio (0 bytes)", "warning: skipped b.wav: too short (100 samples)"]
    assert log.count_by_reason() == {rejects.EMPTY: 1, rejects.TOO_SHORT: 1}
    assert "2 bad item(s) skipped" in log.summary() and "2 resampled" in log.summary()
    items = read_rejected(log.write(tmp_path))
    assert [(i.path, i.line, i.reason) for i in items] == [("a.wav", 3, rejects.EMPTY), ("b.wav", None, rejects.TOO_SHORT)]


def test_strict_raises_on_first_item_naming_file_line_and_reason():
    log = RejectLog(strict=True, warn=False)
    with pytest.raises(BadItemError, match=r"corpus/x\.tsv:7: malformed manifest line") as info:
        log.reject("corpus/x.tsv", rejects.MALFORMED_LINE, 7, "no tab")
    assert isinstance(info.value, ValueError) and "Fix:" in str(info.value)


def test_extend_merges_items_and_notes():
    a, b = RejectLog(warn=False), RejectLog(warn=False)
    b.reject("x", rejects.MISSING_FILE)
    b.note("downmixed")
    a.extend(b)
    assert len(a) == 1 and a.notes["downmixed"] == 1
