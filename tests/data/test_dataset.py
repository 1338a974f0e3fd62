import numpy as np
import pytest
import torch

from sew.data import rejects
from sew.data.corpus import Utterance, read_corpus
from sew.data.dataset import TARGET_PAD, SpeechDataset, collate, make_dataloader
from sew.data.rejects import RejectLog
from sew.data.text import Vocabulary


def _utts(tmp_path, audio, specs):
    """Utterances from (seconds, transcript) pairs, lengths from the header (num_samples=None)."""
    return [Utterance(f"u{i}", str(audio.write(tmp_path / f"u{i}.wav", seconds=s, seed=i)), None, t, i + 1)
            for i, (s, t) in enumerate(specs)]


def test_collate_pads_waveforms_and_targets(tmp_path, audio):
    utts = _utts(tmp_path, audio, [(0.1, "ab c"), (0.3, "Ça"), (0.2, "b")])
    vocab = Vocabulary.build(u.transcript for u in utts)
    ds = SpeechDataset(utts, vocab=vocab)
    assert ds.lengths == [1600, 4800, 3200]
    batch = collate([ds[0], ds[1], ds[2]])
    assert batch.ids == ["u0", "u1", "u2"] and batch.waveforms.shape == (3, 4800)
    assert batch.waveforms.dtype == torch.float32 and batch.lengths.tolist() == [1600, 4800, 3200]
    assert torch.all(batch.waveforms[0, 1600:] == 0) and torch.all(batch.waveforms[0, :1600] != 0)
    assert batch.target_lengths.tolist() == [4, 2, 1] and batch.targets.dtype == torch.int64
    assert batch.targets[1].tolist() == vocab.encode("ça") + [TARGET_PAD] * 2
    assert vocab.decode(batch.targets[0].tolist()) == "ab c"
    assert len(batch.to("cpu")) == 3


def test_untranscribed_batches_have_no_targets_and_bad_transcripts_are_rejected(tmp_path, audio):
    utts = _utts(tmp_path, audio, [(0.1, "ab"), (0.1, None), (0.1, "xyz")])
    assert collate([SpeechDataset(utts)[1]]).targets is None  # no vocab: pretraining
    log = RejectLog(warn=False)
    ds = SpeechDataset(utts, vocab=Vocabulary.build(["ab"]), rejects_log=log)
    assert ds.ids == ["u0"]
    assert [(i.line, i.reason) for i in log.items] == [(2, rejects.NO_TRANSCRIPT), (3, rejects.OUT_OF_VOCABULARY)]


def test_a_transcript_too_long_for_its_audio_is_rejected_by_rate(tmp_path, audio):
    # 1 s saying "un peu" transcribed with a whole description: what a fifth of Tux Paint's Catalan is.
    long = "un peu. els peons nomes es mouen endavant excepte quan capturen"  # 62 symbols (no full stop)
    utts = _utts(tmp_path, audio, [(1.0, "un peu"), (1.0, long), (2.2, long)])
    vocab = Vocabulary.build(u.transcript for u in utts)
    log = RejectLog(warn=False)
    ds = SpeechDataset(utts, vocab=vocab, rejects_log=log, max_chars_per_second=30)
    assert ds.ids == ["u0", "u2"]  # 62 symbols in 2.2 s (28.2 / s) stay
    (item,) = log.items
    assert (item.path, item.line, item.reason) == (utts[1].path, 2, rejects.TOO_FAST)
    assert "62 characters in 1.00 s of audio, 62 per second where the limit is 30" in item.detail
    assert SpeechDataset(utts, vocab=vocab).ids == ["u0", "u1", "u2"]  # no limit: all kept
    with pytest.raises(rejects.BadItemError, match="u1.wav:2: transcript too long for its audio.*data.max_chars_per_second"):
        SpeechDataset(utts, vocab=vocab, rejects_log=RejectLog(strict=True), max_chars_per_second=30)


def test_random_crop_is_deterministic_per_seed_epoch_and_item(tmp_path, audio):
    utts = _utts(tmp_path, audio, [(0.5, None), (0.1, None)])
    ds = SpeechDataset(utts, max_sample_size=2000, seed=1)
    assert ds.lengths == [2000, 1600]
    a, again = ds[0].waveform, ds[0].waveform
    ds.set_epoch(1)
    b = ds[0].waveform
    full, _ = __import__("sew.data.audio", fromlist=["load_audio"]).load_audio(utts[0].path)
    assert len(a) == 2000 and np.array_equal(a, again) and not np.array_equal(a, b)
    start = int(np.flatnonzero(np.isclose(full, a[0]) & np.isclose(np.roll(full, -1), a[1]))[0])
    assert np.array_equal(full[start:start + 2000], a)  # a contiguous window of the utterance
    assert len(ds[1].waveform) == 1600  # shorter than the crop: untouched


def test_file_broken_after_scan_is_reported_and_left_out(tmp_path, audio):
    utts = _utts(tmp_path, audio, [(0.1, None), (0.2, None)])
    utts = [Utterance(u.id, u.path, 1600 * (i + 1), None, i + 1) for i, u in enumerate(utts)]
    open(utts[1].path, "wb").close()  # emptied after the manifest was written
    log = RejectLog(warn=False)
    ds = SpeechDataset(utts, rejects_log=log)
    batch = collate([ds[0], ds[1]])
    assert batch.ids == ["u0"] and [(i.path, i.reason) for i in log.items] == [(utts[1].path, rejects.EMPTY)]
    assert len(collate([None])) == 0


def test_dataloader_with_sampler_over_a_fairseq_manifest(tmp_path, audio):
    rows = []
    for i in range(6):
        audio.write(tmp_path / f"a{i}.flac", seconds=0.1 * (i + 1))
        rows.append(f"a{i}.flac\t{1600 * (i + 1)}")
    (tmp_path / "train.tsv").write_text(".\n" + "\n".join(rows) + "\n")
    (tmp_path / "train.wrd").write_text("".join(f"word {i}\n" for i in range(6)))
    corpus = read_corpus(tmp_path)
    vocab = Vocabulary.build(u.transcript for u in corpus)
    ds = SpeechDataset(corpus, vocab=vocab)
    sampler = ds.sampler(max_tokens=9600, seed=0)
    batches = list(make_dataloader(ds, sampler))
    assert sorted(i for b in batches for i in b.ids) == [f"a{i}" for i in range(6)]
    assert len(batches) > 1 and all(b.waveforms.numel() <= 9600 for b in batches)
    assert all(b.lengths.max() == b.waveforms.shape[1] for b in batches)


def test_lengths_from_headers_for_unscanned_corpora(tmp_path, audio):
    import datasets

    path = str(audio.write(tmp_path / "h.wav", seconds=0.25, rate=8000))
    ds = datasets.Dataset.from_dict({"audio": [path], "text": ["ōsaka"]}).cast_column("audio", datasets.Audio())
    ds.save_to_disk(str(tmp_path / "hf"))
    hf = SpeechDataset(read_corpus(tmp_path / "hf"))  # embedded bytes, no lengths yet
    assert hf.lengths == [4000] and len(collate([hf[0]]).waveforms[0]) == 4000
    log = RejectLog(warn=False)
    missing = Utterance("m", str(tmp_path / "gone.wav"), None, None, 9)
    assert len(SpeechDataset([missing], rejects_log=log)) == 0
    assert [(i.line, i.reason) for i in log.items] == [(9, rejects.MISSING_FILE)]


def test_random_crops_follow_the_epoch_in_data_workers_too(tmp_path, audio):
    # Persistent workers copy the dataset once; the epoch rides with each index from the sampler, so the
    # crops change every epoch and are the crops of a loader without workers, bitwise.
    utts = _utts(tmp_path, audio, [(4.0, None), (3.0, None)])
    crops = {}
    for workers in (0, 1):
        ds = SpeechDataset(utts, max_sample_size=16000, seed=3)
        sampler = ds.sampler(max_tokens=64000, seed=3)
        loader = make_dataloader(ds, sampler, num_workers=workers)
        crops[workers] = []
        for epoch in range(3):
            sampler.set_epoch(epoch)  # the training loop also calls ds.set_epoch; a worker's copy never sees it
            crops[workers] += [b.waveforms.clone() for b in loader]
    assert len(crops[0]) == 3 and all(torch.equal(a, b) for a, b in zip(crops[0], crops[1]))
    first = [c[0] for c in crops[1]]  # the same utterance in each epoch
    assert not torch.equal(first[0], first[1]) and not torch.equal(first[1], first[2])
