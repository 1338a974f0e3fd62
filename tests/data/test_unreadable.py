"""Files that cannot be read (permissions, I/O) and text that is not UTF-8: skipped, counted and named with the
file (and line) wherever data is read; ``--strict`` stops at the first."""

from __future__ import annotations

import os

import pytest

import sew.data.audio as audio_module
from sew.data import rejects
from sew.data.audio import load_input
from sew.data.corpus import Utterance, read_corpus
from sew.data.dataset import SpeechDataset, collate
from sew.data.manifest import write_manifest
from sew.data.rejects import BadItemError, RejectLog, read_rejected


@pytest.fixture
def locked(tmp_path, audio, monkeypatch):
    """``locked(path)``: a readable WAV made unreadable (chmod 000; for root, whom permissions do not stop,
    the open is refused as the kernel would refuse anyone else)."""
    def make(name: str):
        path = audio.write(tmp_path / name, seconds=0.5)
        path.chmod(0)
        if os.geteuid() == 0:
            real = open

            def refusing(file, *args, **kw):
                if os.fspath(file) == str(path):
                    raise PermissionError(13, "Permission denied", str(path))
                return real(file, *args, **kw)

            monkeypatch.setattr(audio_module, "open", refusing, raising=False)
        return path

    return make


def test_an_unreadable_file_is_skipped_and_named_in_the_dataset_and_at_inference(tmp_path, audio, locked):
    good = audio.write(tmp_path / "good.wav", seconds=0.5)
    bad = locked("bad.wav")
    log = RejectLog(warn=False)
    ds = SpeechDataset([Utterance("good", str(good), 8000, None, 2), Utterance("bad", str(bad), 8000, None, 3)],
                       rejects_log=log)
    batch = collate([ds[0], ds[1]])
    assert batch.ids == ["good"]
    (item,) = log.items
    assert (item.path, item.line, item.reason) == (str(bad), 3, rejects.UNREADABLE) and "Permission denied" in item.detail
    assert load_input(bad, 400)[2] == "unreadable audio: Permission denied"  # sew transcribe / classify / features
    with pytest.raises(BadItemError, match=rf"{bad}:3: unreadable audio \(Permission denied\)"):
        SpeechDataset([Utterance("bad", str(bad), 8000, None, 3)], rejects_log=RejectLog(strict=True))[0]


def test_the_manifest_scan_counts_an_unreadable_file_and_strict_stops_there(tmp_path, audio, locked):
    src = tmp_path / "src"
    (src / "wav").mkdir(parents=True)
    audio.write(src / "wav" / "good.wav", seconds=0.5)
    locked(os.path.join("src", "wav", "bad.wav"))
    (src / "train.tsv").write_text("wav\ngood.wav\t8000\nbad.wav\t8000\n")
    log = RejectLog(warn=False)
    write_manifest(src, tmp_path / "out", log, progress=False)
    assert [u.id for u in read_corpus(tmp_path / "out")] == ["good"]
    assert [(i.path, i.line, i.reason) for i in read_rejected(tmp_path / "out")] == [
        (str(src / "wav" / "bad.wav"), 3, rejects.UNREADABLE)]
    with pytest.raises(BadItemError, match="bad.wav:3: unreadable audio"):
        write_manifest(src, tmp_path / "strict", RejectLog(strict=True, warn=False), progress=False)


def test_lines_that_are_not_utf8_are_rejected_with_file_and_line(tmp_path, audio):
    for name in ("a", "b", "c"):
        audio.write(tmp_path / "wav" / f"{name}.wav", seconds=0.3)
    (tmp_path / "train.tsv").write_text("wav\na.wav\t4800\nb.wav\t4800\nc.wav\t4800\n")
    (tmp_path / "train.wrd").write_bytes("hello\ncaf\xe9\nworld\n".encode("latin-1"))  # one Latin-1 line
    log = RejectLog(warn=False)
    corpus = read_corpus(tmp_path, rejects_log=log)
    assert [(u.id, u.transcript) for u in corpus] == [("a", "hello"), ("c", "world")]
    (item,) = log.items
    assert (item.path, item.line, item.reason) == (str(tmp_path / "train.wrd"), 2, rejects.UNDECODABLE_TEXT)
    assert item.detail == "byte 0xE9 at column 4"
    # An audiofolder's metadata.csv: the same.
    folder = tmp_path / "folder"
    for name in ("a", "b"):
        audio.write(folder / "train" / f"{name}.wav", seconds=0.3)
    (folder / "train" / "metadata.csv").write_bytes("file_name,transcription\na.wav,ok\nb.wav,na\xefve\n"
                                                    .encode("latin-1"))
    log = RejectLog(warn=False)
    assert [u.id for u in read_corpus(folder, rejects_log=log)] == ["a"]
    assert [(i.line, i.reason) for i in log.items] == [(3, rejects.UNDECODABLE_TEXT)]
