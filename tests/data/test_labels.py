"""Class labels: the .label manifest file, the audiofolder / datasets label column, Speech Commands."""

from pathlib import Path

import pytest

from sew.data import rejects
from sew.data.corpus import Corpus, Utterance, detect_format, list_splits, read_corpus
from sew.data.manifest import write_manifest, write_split
from sew.data.rejects import RejectLog
from sew.data.speech_commands import BACKGROUND_NOTE


def _log():
    return RejectLog(warn=False)


def test_label_file_round_trip_and_misaligned_label_file(tmp_path, audio):
    utts = [Utterance(f"u{i}", str(audio.write(tmp_path / "wav" / f"u{i}.wav", seconds=0.1)), 1600, None,
                      label=label) for i, label in enumerate(["dog", "cat", " two\nlines "])]
    write_split(tmp_path / "out", "train", utts)
    assert (tmp_path / "out" / "train.label").read_text() == "dog\ncat\ntwo lines\n"
    assert not (tmp_path / "out" / "train.wrd").exists()  # labels only: no transcripts written
    corpus = read_corpus(tmp_path / "out")
    assert [u.label for u in corpus] == ["dog", "cat", "two lines"] and [u.transcript for u in corpus] == [None] * 3
    assert corpus.has_labels and corpus.labels() == ["cat", "dog", "two lines"]
    (tmp_path / "out" / "train.label").write_text("dog\ncat\n")
    with pytest.raises(ValueError, match=r"train\.label: 2 lines but .*train\.tsv lists 3 entries"):
        read_corpus(tmp_path / "out")
    write_split(tmp_path / "out", "train", [Utterance("u0", utts[0].path, 1600, "hello")])
    assert not (tmp_path / "out" / "train.label").exists()  # a stale label file would be read back
    plain = read_corpus(tmp_path / "out")
    assert not plain.has_labels and plain.labels() == [] and plain.utterances[0].label is None


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_audiofolder_label_column_keeps_label_only_rows(tmp_path, audio, kind):
    for name in ("a", "b", "c"):
        audio.write(tmp_path / "src" / f"{name}.wav", seconds=0.2)
    if kind == "csv":
        (tmp_path / "src" / "metadata.csv").write_text("file_name,text,label\na.wav,hello there,dog\nb.wav,,cat\n"
                                                       "c.wav,no label,\n")
    else:
        (tmp_path / "src" / "metadata.jsonl").write_text(
            '{"file_name": "a.wav", "text": "hello there", "label": "dog"}\n{"file_name": "b.wav", "label": "cat"}\n'
            '{"file_name": "c.wav", "text": "no label", "label": null}\n')
    corpus = read_corpus(tmp_path / "src")
    assert [u.label for u in corpus] == ["dog", "cat", None] and corpus.labels() == ["cat", "dog"]
    log = _log()
    write_manifest(tmp_path / "src", tmp_path / "out", log, progress=False)
    # b has a label but no transcript: kept. c has a transcript but no label, in a labelled corpus: rejected.
    assert [(i.path.endswith("c.wav"), i.reason) for i in log.items] == [(True, rejects.NO_LABEL)]
    out = read_corpus(tmp_path / "out")
    assert [(u.id, u.label, u.transcript) for u in out] == [("a", "dog", "hello there"), ("b", "cat", "")]


def test_asr_rows_without_transcript_are_still_rejected(tmp_path, audio):
    for name in ("a", "b"):
        audio.write(tmp_path / "src" / f"{name}.wav", seconds=0.2)
    (tmp_path / "src" / "metadata.csv").write_text("file_name,text\na.wav,hello\nb.wav,\n")
    log = _log()
    write_manifest(tmp_path / "src", tmp_path / "out", log, progress=False)
    assert [i.reason for i in log.items] == [rejects.NO_TRANSCRIPT] and not (tmp_path / "out" / "train.label").exists()


def test_hf_class_label_column_gives_names(tmp_path, audio):
    import datasets

    paths = [str(audio.write(tmp_path / "src" / f"h{i}.wav", seconds=0.2, seed=i)) for i in range(3)]
    labels = datasets.Features({"audio": datasets.Value("string"), "label": datasets.ClassLabel(names=["cat", "dog"])})
    data = datasets.Dataset.from_dict({"audio": paths, "label": [1, 0, -1]}, features=labels)
    data.cast_column("audio", datasets.Audio()).save_to_disk(str(tmp_path / "hf"))
    corpus = read_corpus(tmp_path / "hf")
    assert [u.label for u in corpus] == ["dog", "cat", None]


def _speech_commands(root, audio):
    """A tiny Speech Commands tree; returns the expected clips of each split."""
    for rel in ("yes/aa_nohash_0.wav", "yes/bb_nohash_0.wav", "yes/cc_nohash_0.wav", "no/aa_nohash_0.wav",
                "no/dd_nohash_0.wav", "_background_noise_/white_noise.wav", "_background_noise_/hum.wav"):
        audio.write(root / rel, seconds=0.2)
    (root / "_background_noise_" / "README.md").write_text("noise")
    (root / "validation_list.txt").write_text("yes/bb_nohash_0.wav\nno/gone_nohash_0.wav\n\n")
    (root / "testing_list.txt").write_text("no/aa_nohash_0.wav\nstray.wav\nyes/cc_nohash_0.wav\n")
    return {"train": [("no/dd_nohash_0", "no"), ("yes/aa_nohash_0", "yes")],
            "validation": [("yes/bb_nohash_0", "yes")],
            "test": [("no/aa_nohash_0", "no"), ("yes/cc_nohash_0", "yes")]}


def test_speech_commands_layout(tmp_path, audio):
    root = tmp_path / "sc"
    expected = _speech_commands(root, audio)
    assert detect_format(root) == "speech-commands" and list_splits(root) == ["train", "test", "validation"]
    log = _log()
    for split, clips in expected.items():
        corpus = read_corpus(root, split, log)
        assert corpus.split == split and [(u.id, u.label) for u in corpus] == clips
        assert corpus.has_labels and not corpus.has_transcripts
    assert read_corpus(root, "dev").split == "validation"  # the dev alias
    # The missing listed file and the line outside a label folder are reported; background noise is counted.
    got = [(i.path, i.line, i.reason) for i in log.items]
    assert got == [(str(root / "no/gone_nohash_0.wav"), 2, rejects.MISSING_FILE),
                   (str(root / "testing_list.txt"), 2, rejects.MALFORMED_LINE)]
    assert log.notes == {BACKGROUND_NOTE: 2}
    (root / "testing_list.txt").unlink()  # without both lists it is not this layout
    with pytest.raises(ValueError, match="not a corpus"):
        read_corpus(root)


def test_manifest_of_speech_commands_writes_label_files(tmp_path, audio, cli):
    root = tmp_path / "sc"
    expected = _speech_commands(root, audio)
    out = tmp_path / "out"
    code, stdout, err = cli("data", "manifest", root, "--out", out, "--no-progress")
    assert code == 0 and "2 _background_noise_ file(s) left out" in stdout and "2 bad item(s) skipped" in stdout
    for split, clips in expected.items():
        assert (out / f"{split}.label").read_text() == "".join(f"{label}\n" for _, label in clips)
        corpus = read_corpus(out, split)  # ids are relative to the manifest's root: compare the paths
        assert [(str(Path(u.path).relative_to(root).with_suffix("")), u.label) for u in corpus] == clips
        assert all(u.num_samples == 3200 for u in corpus)
    assert not (out / "vocab.json").exists()  # no transcripts: no vocabulary
    code, stdout, _ = cli("data", "info", out)
    assert code == 0 and "train: 2 utterances, 0.0 min, 0 transcribed, 2 labelled (2 classes)" in stdout


def test_corpus_label_helpers():
    corpus = Corpus([Utterance("a", "a.wav", label="b"), Utterance("b", "b.wav"), Utterance("c", "c.wav", label="a"),
                     Utterance("d", "d.wav", label="b")], "train", "x", "fairseq")
    assert corpus.has_labels and corpus.labels() == ["a", "b"]
    assert not Corpus([Utterance("a", "a.wav")], "train", "x", "fairseq").has_labels
