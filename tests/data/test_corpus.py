"""Each reader on a small corpus written in the test, with non-ASCII transcripts."""

import json

import pytest

from sew.data import rejects
from sew.data.corpus import detect_format, list_splits, read_corpus
from sew.data.rejects import RejectLog

TEXTS = ["Ça va très bien", "Привет, мир!", "Grüße aus Köln", "naïve café"]


def _log():
    return RejectLog(warn=False)


def test_fairseq_directory_with_splits_wrd_and_relative_root(tmp_path, audio):
    for i in range(3):
        audio.write(tmp_path / "wav" / f"u{i}.wav", seconds=0.1 * (i + 1))
    (tmp_path / "train.tsv").write_text("wav\nu0.wav\t1600\nu1.wav\t3200\n", encoding="utf-8")
    (tmp_path / "train.wrd").write_text(f"{TEXTS[0]}\n{TEXTS[1]}\n", encoding="utf-8")
    (tmp_path / "valid.tsv").write_text(f"{tmp_path / 'wav'}\nu2.wav\t4800\n", encoding="utf-8")
    (tmp_path / "valid.ltr").write_text("g r ü ß e | a u s |\n", encoding="utf-8")
    assert detect_format(tmp_path) == "fairseq" and list_splits(tmp_path) == ["train", "valid"]
    train = read_corpus(tmp_path)
    assert train.split == "train" and [u.num_samples for u in train] == [1600, 3200]
    assert [u.transcript for u in train] == TEXTS[:2] and train.utterances[0].path == str(tmp_path / "wav" / "u0.wav")
    dev = read_corpus(tmp_path, split="dev")  # "dev" finds valid.tsv
    assert dev.split == "valid" and dev.utterances[0].transcript == "grüße aus" and dev.has_lengths
    single = read_corpus(tmp_path / "valid.tsv")
    assert single.split == "valid" and len(single) == 1


def test_fairseq_malformed_lines_are_rejected_and_misaligned_wrd_is_an_error(tmp_path):
    (tmp_path / "train.tsv").write_text("/data\na.wav\t100\nno-tab-here\nb.wav\tmany\nc.wav\t300\n")
    log = _log()
    corpus = read_corpus(tmp_path / "train.tsv", rejects_log=log)
    assert [u.id for u in corpus] == ["a", "c"] and [u.line for u in corpus] == [2, 5]
    assert [(i.line, i.reason) for i in log.items] == [(3, rejects.MALFORMED_LINE), (4, rejects.MALFORMED_LINE)]
    (tmp_path / "train.wrd").write_text("one\ntwo\n")
    with pytest.raises(ValueError, match=r"train\.wrd: 2 lines but .* lists 4 entries"):
        read_corpus(tmp_path / "train.tsv")


def test_librispeech_layout(tmp_path, audio):
    root = tmp_path / "LibriSpeech"
    for split in ("train-clean-5", "test-clean"):
        chapter = root / split / "19" / "198"
        audio.write(chapter / "19-198-0000.flac", seconds=0.2)
        audio.write(chapter / "19-198-0001.flac", seconds=0.3)
        audio.write(chapter / "19-198-0002.flac", seconds=0.3)  # not in the transcript file
        (chapter / "19-198.trans.txt").write_text(f"19-198-0000 {TEXTS[2].upper()}\n19-198-0001 {TEXTS[3]}\n",
                                                  encoding="utf-8")
    assert detect_format(root) == "librispeech" and list_splits(root) == ["train-clean-5", "test-clean"]
    log = _log()
    test = read_corpus(root, split="test", rejects_log=log)
    assert test.split == "test-clean" and [u.id for u in test] == ["19-198-0000", "19-198-0001"]
    assert test.utterances[0].transcript == "GRÜSSE AUS KÖLN" and test.utterances[1].path.endswith("19-198-0001.flac")
    assert [(i.path.endswith("19-198-0002.flac"), i.reason) for i in log.items] == [(True, rejects.NO_TRANSCRIPT)]
    assert read_corpus(root / "train-clean-5").split == "train-clean-5"  # a split directory alone


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_audiofolder(tmp_path, audio, kind):
    for i in range(3):
        audio.write(tmp_path / "train" / "clips" / f"c{i}.wav", seconds=0.2)
    audio.write(tmp_path / "test" / "t0.ogg", seconds=0.2)
    if kind == "csv":
        (tmp_path / "train" / "metadata.csv").write_text(
            'file_name,sentence\nclips/c0.wav,"Ça va, très bien"\nclips/c1.wav,Привет\nclips/c2.wav,a,b,c\n',
            encoding="utf-8")
        (tmp_path / "test" / "metadata.csv").write_text("file_name,sentence\nt0.ogg,naïve\n", encoding="utf-8")
    else:
        rows = [{"file_name": "clips/c0.wav", "transcription": "Ça va, très bien"},
                {"file_name": "clips/c1.wav", "transcription": "Привет"}]
        (tmp_path / "train" / "metadata.jsonl").write_text(
            "\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n{not json\n", encoding="utf-8")
        (tmp_path / "test" / "metadata.jsonl").write_text('{"file_name": "t0.ogg", "transcription": "naïve"}\n')
    assert detect_format(tmp_path) == "audiofolder" and list_splits(tmp_path) == ["train", "test"]
    log = _log()
    train = read_corpus(tmp_path, rejects_log=log)
    assert [u.transcript for u in train] == ["Ça va, très bien", "Привет"]
    assert train.utterances[1].path == str(tmp_path / "train" / "clips" / "c1.wav")
    assert [(i.line, i.reason) for i in log.items] == [(4 if kind == "csv" else 3, rejects.MALFORMED_LINE)]
    assert read_corpus(tmp_path, "test").utterances[0].transcript == "naïve"


def test_audiofolder_without_transcripts(tmp_path, audio):
    audio.write(tmp_path / "a.wav")
    (tmp_path / "metadata.csv").write_text("file_name,speaker\na.wav,s1\n")
    corpus = read_corpus(tmp_path)
    assert corpus.split == "train" and corpus.utterances[0].transcript is None and not corpus.has_transcripts


def test_hf_save_to_disk(tmp_path, audio):
    import datasets

    paths = [str(audio.write(tmp_path / "src" / f"h{i}.flac", seconds=0.2, seed=i)) for i in range(2)]
    train = datasets.Dataset.from_dict({"audio": paths, "text": TEXTS[:2], "id": ["x0", "x1"]})
    train = train.cast_column("audio", datasets.Audio())
    test = datasets.Dataset.from_dict({"audio": paths[:1], "text": [TEXTS[3]]}).cast_column("audio", datasets.Audio())
    datasets.DatasetDict({"train": train, "test": test}).save_to_disk(str(tmp_path / "hf"))
    hf = tmp_path / "hf"
    assert detect_format(hf) == "hf-datasets" and list_splits(hf) == ["train", "test"]
    corpus = read_corpus(hf)
    assert [u.id for u in corpus] == ["x0", "x1"] and [u.transcript for u in corpus] == TEXTS[:2]
    assert corpus.utterances[0].audio_bytes == open(paths[0], "rb").read()  # embedded, decoded later
    test_corpus = read_corpus(hf, split="test")
    assert test_corpus.utterances[0].id == "test-000000" and test_corpus.utterances[0].transcript == TEXTS[3]


def test_unknown_source_errors_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        read_corpus(tmp_path / "nowhere")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="not a corpus"):
        read_corpus(tmp_path)
    (tmp_path / "train.tsv").write_text("/\na.wav\t1\n")
    with pytest.raises(ValueError, match="no split 'test'; found train"):
        read_corpus(tmp_path, split="test")
