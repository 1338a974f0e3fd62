"""The bad-input policy end to end: a corpus seeded with every kind of bad item."""

import numpy as np
import pytest
import soundfile as sf

from sew.data import rejects
from sew.data.corpus import read_corpus
from sew.data.manifest import write_manifest
from sew.data.rejects import RejectLog, read_rejected
from sew.data.text import Vocabulary

GOOD = {  # file -> transcript
    "good.wav": "Grüße aus Köln",
    "stereo44k.flac": "Ça va",  # resampled and downmixed: not an error
    "vorbis.ogg": "über alles",
}


def _bad_corpus(root, audio):
    """train.tsv + train.wrd listing good files and one of each bad kind; returns {line: (file, reason)}."""
    wav = root / "wav"
    audio.write(wav / "good.wav", seconds=0.5)
    audio.write(wav / "stereo44k.flac", seconds=0.5, rate=44100, channels=2)
    audio.write(wav / "vorbis.ogg", seconds=0.5)
    (wav / "garbage.wav").write_bytes(b"\x00 not a sound file " * 20)
    audio.write(wav / "truncated.wav", seconds=0.5)
    data = (wav / "truncated.wav").read_bytes()
    (wav / "truncated.wav").write_bytes(data[: len(data) // 2])
    (wav / "empty.wav").write_bytes(b"")
    sf.write(str(wav / "nan.wav"), np.array([0.0, np.nan] * 2000, np.float32), 16000, subtype="FLOAT")
    audio.write(wav / "short.wav", seconds=0.01)  # 160 samples < the 400-sample receptive field
    audio.write(wav / "untranscribed.wav")
    audio.write(wav / "cyrillic.wav")
    entries = [  # (manifest line, transcript, expected reason or None)
        ("good.wav\t8000", GOOD["good.wav"], None),
        ("garbage.wav\t8000", "eins", rejects.UNREADABLE),
        ("stereo44k.flac\t8000", GOOD["stereo44k.flac"], None),
        ("this line has no tab", "zwei", rejects.MALFORMED_LINE),
        ("truncated.wav\t8000", "drei", rejects.TRUNCATED),
        ("empty.wav\t8000", "vier", rejects.EMPTY),
        ("nan.wav\t4000", "fünf", rejects.NON_FINITE),
        ("missing.wav\t8000", "sechs", rejects.MISSING_FILE),
        ("short.wav\t160", "sieben", rejects.TOO_SHORT),
        ("untranscribed.wav\t8000", "", rejects.NO_TRANSCRIPT),
        ("cyrillic.wav\t8000", "привет", rejects.OUT_OF_VOCABULARY),
        ("vorbis.ogg\t8000", GOOD["vorbis.ogg"], None),
    ]
    (root / "train.tsv").write_text("wav\n" + "".join(e[0] + "\n" for e in entries), encoding="utf-8")
    (root / "train.wrd").write_text("".join(e[1] + "\n" for e in entries), encoding="utf-8")
    expected = {}
    for lineno, (row, _, reason) in enumerate(entries, start=2):
        if reason:
            name = str(root / "train.tsv") if reason == rejects.MALFORMED_LINE else str(wav / row.split("\t")[0])
            expected[lineno] = (name, reason)
    return expected


@pytest.fixture
def bad_corpus(tmp_path, audio):
    src = tmp_path / "src"
    expected = _bad_corpus(src, audio)
    vocab = Vocabulary.build(list(GOOD.values()) + ["eins zwei drei vier fünf sechs sieben"])
    vocab.save(tmp_path / "vocab")
    return src, expected, tmp_path / "vocab"


def test_default_skips_each_bad_item_once_with_its_reason(tmp_path, bad_corpus, capsys):
    src, expected, vocab_dir = bad_corpus
    log = RejectLog()
    out = tmp_path / "out"
    reports = write_manifest(src, out, log, vocab=Vocabulary.load(vocab_dir), progress=False)
    # Every bad item reported once, with the right reason, file and line.
    got = {item.line: (item.path, item.reason) for item in read_rejected(out)}
    assert got == expected and len(log) == len(expected) == 9
    assert set(log.count_by_reason()) == set(rejects.REASONS) - {rejects.TOO_LONG, rejects.NO_LABEL, rejects.UNKNOWN_LABEL,
                                                                 rejects.UNDECODABLE_TEXT,  # tests/data/test_unreadable.py
                                                                 rejects.TOO_FAST}  # a training policy: test_dataset.py
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning: skipped")]
    assert len(warnings) == len(expected)
    # Every good item comes through, with its 16 kHz length and normalised transcript.
    corpus = read_corpus(out)
    assert [u.id for u in corpus] == ["good", "stereo44k", "vorbis"] and [u.num_samples for u in corpus] == [8000] * 3
    assert [u.transcript for u in corpus] == ["grüsse aus köln", "ça va", "über alles"]  # casefold: ß -> ss
    assert (out / "train.ltr").read_text(encoding="utf-8").splitlines()[1] == "ç a | v a |"
    assert log.notes == {"resampled": 1, "downmixed": 1}
    assert reports[0].kept == 3 and reports[0].rejected == 9
    assert Vocabulary.load(out) == Vocabulary.load(vocab_dir)


def test_strict_stops_at_the_first_bad_item(tmp_path, bad_corpus, cli):
    src, expected, vocab_dir = bad_corpus
    code, _, err = cli("data", "manifest", src, "--out", tmp_path / "out", "--strict", "--vocab", vocab_dir,
                       "--no-progress")
    # The manifest is read before any audio is decoded: the malformed line 5 is the first bad item met.
    assert code == 2 and err.count("\n") == 1
    assert f"{src / 'train.tsv'}:5: malformed manifest line" in err
    (src / "train.tsv").write_text((src / "train.tsv").read_text().replace("this line has no tab", "good.wav\t8000"))
    code, _, err = cli("data", "manifest", src, "--out", tmp_path / "out", "--strict", "--no-progress")
    first = min(expected)  # line 3: garbage.wav
    assert code == 2 and f"{expected[first][0]}:{first}: unreadable audio" in err and "Fix:" in err


def test_cli_default_run_prints_summary_and_writes_rejected(tmp_path, bad_corpus, cli):
    src, expected, vocab_dir = bad_corpus
    out = tmp_path / "out"
    code, stdout, err = cli("data", "manifest", src, "--out", out, "--vocab", vocab_dir, "--workers", "2",
                            "--no-progress")
    assert code == 0
    assert "train: 3 utterances" in stdout and "9 bad item(s) skipped" in stdout
    assert "1 resampled" in stdout and "1 downmixed" in stdout
    assert err.count("warning: skipped") == 9
    assert {i.line: (i.path, i.reason) for i in read_rejected(out)} == expected  # same result with 2 processes


def test_duration_limits_and_copy_audio(tmp_path, audio):
    for i, seconds in enumerate([0.2, 0.5, 1.0]):
        audio.write(tmp_path / "src" / f"a{i}.wav", seconds=seconds, rate=8000)
    (tmp_path / "src" / "metadata.csv").write_text("file_name,text\na0.wav,x\na1.wav,y\na2.wav,z\n")
    log = RejectLog(warn=False)
    write_manifest(tmp_path / "src", tmp_path / "out", log, min_samples=4000, max_samples=12000,
                   copy_audio=True, progress=False)
    assert [(i.path.endswith(n), i.reason) for i, n in zip(log.items, ["a0.wav", "a2.wav"])] == [
        (True, rejects.TOO_SHORT), (True, rejects.TOO_LONG)]
    corpus = read_corpus(tmp_path / "out")
    assert [u.id for u in corpus] == ["a1"] and corpus.utterances[0].path == str(tmp_path / "out/audio/train/a1.flac")
    assert sf.info(corpus.utterances[0].path).samplerate == 16000 and corpus.utterances[0].num_samples == 8000


def test_hf_embedded_audio_is_written_out(tmp_path, audio):
    import datasets

    path = str(audio.write(tmp_path / "h.wav", seconds=0.3, rate=22050))
    ds = datasets.Dataset.from_dict({"audio": [path], "sentence": ["Ōsaka"]}).cast_column("audio", datasets.Audio())
    ds.save_to_disk(str(tmp_path / "hf"))
    write_manifest(tmp_path / "hf", tmp_path / "out", RejectLog(warn=False), progress=False)
    corpus = read_corpus(tmp_path / "out")
    assert corpus.utterances[0].transcript == "ōsaka" and corpus.utterances[0].num_samples == 4800
    assert (tmp_path / "out" / "audio" / "train" / "train-000000.flac").is_file()


def test_trim_silence_rewrites_audio_without_its_quiet_edges(tmp_path, audio, cli):
    rng = np.random.default_rng(1)
    quiet = 0.3 * 10 ** (-50 / 20) * rng.standard_normal(8000)  # 1 s at 8 kHz, 50 dB under the tone
    audio.write(tmp_path / "src" / "tight.wav", seconds=0.5)
    sf.write(str(tmp_path / "src" / "padded.wav"), np.concatenate([quiet, audio.tone(0.5, rate=8000), quiet]), 8000)
    (tmp_path / "src" / "metadata.csv").write_text("file_name,text\npadded.wav,x\ntight.wav,y\n")
    code, stdout, _ = cli("data", "manifest", tmp_path / "src", "--out", tmp_path / "out", "--trim-silence", "25",
                          "--no-progress")
    assert code == 0 and "1 trimmed" in stdout
    lengths = {u.id: u.num_samples for u in read_corpus(tmp_path / "out")}
    assert abs(lengths["padded"] - (8000 + 2 * 1600)) <= 400 and lengths["tight"] == 8000  # at 16 kHz
    for u in read_corpus(tmp_path / "out"):
        assert sf.info(u.path).frames == u.num_samples  # the manifest holds the trimmed files' lengths
    code, _, err = cli("data", "manifest", tmp_path / "src", "--out", tmp_path / "o2", "--trim-silence", "0")
    assert code != 0 and "--trim-silence" in err and "positive" in err


def test_manifest_reports_edge_silence_and_finetune_repeats_the_advice(tmp_path, audio, cli):
    """Each split's quiet edges as a share of its audio, measured before any trimming; past the threshold
    the report says to trim, and ``silence_advice`` (what ``sew finetune`` prints at start) repeats it."""
    import re

    from sew.data.silence import ADVISE_SHARE, silence_advice

    rng = np.random.default_rng(1)
    quiet = 0.3 * 10 ** (-50 / 20) * rng.standard_normal(8000)  # 1 s at 8 kHz, 50 dB under the tone
    audio.write(tmp_path / "src" / "tight.wav", seconds=0.5)
    sf.write(str(tmp_path / "src" / "padded.wav"), np.concatenate([quiet, audio.tone(0.5, rate=8000), quiet]), 8000)
    (tmp_path / "src" / "metadata.csv").write_text("file_name,text\npadded.wav,x\ntight.wav,y\n")
    expected = 2 * (1.0 - 0.1) / 3.0  # 0.9 s cut on each side of padded.wav, of 3 s in all
    for trim in ([], ["--trim-silence", "25"]):
        out = tmp_path / ("trimmed" if trim else "plain")
        code, stdout, _ = cli("data", "manifest", tmp_path / "src", "--out", out, "--no-progress", *trim)
        assert code == 0
        share = float(re.search(r"train: edge silence ([\d.]+)% of the audio", stdout).group(1)) / 100
        assert abs(share - expected) <= 0.02 and share > ADVISE_SHARE  # measured before trimming, both times
        advice = silence_advice(out, "train")
        if trim:
            assert "cut (--trim-silence 25)" in stdout and advice is None
        else:
            assert "--trim-silence 25" in stdout and advice is not None and "--trim-silence 25" in advice
    # The same audio with class labels instead of transcripts: measured, but the CTC advice is not given.
    (tmp_path / "src" / "metadata.csv").write_text("file_name,label\npadded.wav,x\ntight.wav,y\n")
    code, stdout, _ = cli("data", "manifest", tmp_path / "src", "--out", tmp_path / "labels", "--no-progress")
    share = float(re.search(r"train: edge silence ([\d.]+)% of the audio", stdout).group(1)) / 100
    assert code == 0 and abs(share - expected) <= 0.02 and "--trim-silence" not in stdout
    assert silence_advice(tmp_path / "labels", "train") is None
    audio.write(tmp_path / "clean" / "a.wav", seconds=0.5)
    (tmp_path / "clean" / "metadata.csv").write_text("file_name,text\na.wav,x\n")
    code, stdout, _ = cli("data", "manifest", tmp_path / "clean", "--out", tmp_path / "c", "--no-progress")
    assert code == 0 and "edge silence 0.0%" in stdout and silence_advice(tmp_path / "c", "train") is None


def test_manifest_counts_transcripts_too_long_for_their_audio(tmp_path, audio, cli):
    # A recording that says a stamp's name, transcribed with its whole description (Tux Paint's Catalan).
    audio.write(tmp_path / "src" / "name.wav", seconds=1.0)
    audio.write(tmp_path / "src" / "whole.wav", seconds=1.0)
    (tmp_path / "src" / "metadata.csv").write_text(
        "file_name,text\nname.wav,un peó\nwhole.wav,Un peó. Els peons només es mouen endavant excepte quan capturen.\n")
    code, stdout, _ = cli("data", "manifest", tmp_path / "src", "--out", tmp_path / "out", "--no-progress")
    assert code == 0
    assert "train: 2 utterances (0.0 min) kept, 0 rejected; 1 with more than 30 characters per second" in stdout
    assert "data.max_chars_per_second" in stdout
