import json
import shutil

import pytest
import torch

from sew.asr.task import CTCTask
from sew.train.logs import read_log
from sew.train.loop import TrainConfig, Trainer, TrainingDiverged
from sew.train.masking import MaskingConfig
from sew.train.task import LossSums
from tests.train.conftest import tiny_model

# Dropout, masks and several epochs: everything a resume has to reproduce.
MASKS = MaskingConfig(mask_prob=0.3, mask_length=4, mask_channel_prob=0.1, mask_channel_length=8)


def config(**kw):
    base = dict(max_update=6, lr=1e-3, warmup_updates=2, max_tokens=16000 * 6, save_every=3, keep_last=5,
                validate_every=0, log_every=1)
    return TrainConfig(**{**base, **kw})


def weights_equal(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def dropout_model(make_model):
    return make_model(feature_dropout=0.1, attention_dropout=0.1)


@pytest.fixture(scope="module")
def short_data(vocab, tiny_corpus):
    """The 6 shortest train utterances (about 2 s each): cheap updates."""
    from sew.data.corpus import read_corpus
    from sew.data.dataset import SpeechDataset

    utts = sorted(read_corpus(tiny_corpus, split="train").utterances, key=lambda u: u.num_samples)[:6]
    return SpeechDataset(utts, vocab=vocab)


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, vocab, short_data):
    """Six uninterrupted updates over two epochs of 6 short utterances, checkpoints at 3 and 6."""
    data = short_data
    run = tmp_path_factory.mktemp("reference")
    model = dropout_model(lambda **kw: tiny_model(len(vocab), **kw))
    state = Trainer(config(), model, CTCTask(vocab, MASKS), run, progress=False).fit(data)
    assert state.update == 6 and state.epoch >= 1  # the run crossed an epoch boundary
    return run, model, data


def test_resume_from_a_checkpoint_is_exact(tmp_path, make_model, reference_run, vocab):
    run, full, data = reference_run
    (tmp_path / "checkpoints").mkdir(parents=True)
    shutil.copytree(run / "checkpoints/update_00000003", tmp_path / "checkpoints/update_00000003")
    resumed = dropout_model(make_model)
    Trainer(config(), resumed, CTCTask(vocab, MASKS), tmp_path, progress=False).fit(data)  # finds the checkpoint
    assert weights_equal(full, resumed)
    records = read_log(run, "train")
    assert [r["update"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert {"loss", "lr", "gnorm", "audio_per_s", "minutes"} <= set(records[0])
    (facts,) = read_log(run, "run")  # where and in which precision the run computed
    assert facts["precision"] == "float32" and facts["device"] == "cpu" and facts["processes"] == 1
    assert "avx" in facts["cpu"] or "neon" in facts["cpu"] or "baseline" in facts["cpu"]
    assert (run / "final/vocab.json").is_file() and (run / "curves.png").is_file()
    assert any((run / "tensorboard").iterdir())


class InterruptOnce(CTCTask):
    """Raises KeyboardInterrupt at the first micro-batch after ``at`` updates (as Ctrl-C would)."""

    at = 4

    def loss(self, model, batch, update, micro, generator):
        if update == self.at and not getattr(self, "fired", False):
            self.fired = True
            raise KeyboardInterrupt
        return super().loss(model, batch, update, micro, generator)


def test_ctrl_c_then_resume_is_exact(tmp_path, make_model, reference_run, vocab):
    _, full, data = reference_run
    task = InterruptOnce(vocab, MASKS)
    with pytest.raises(KeyboardInterrupt):
        Trainer(config(), dropout_model(make_model), task, tmp_path, progress=False).fit(data)
    assert json.loads((tmp_path / "checkpoints/update_00000004/trainer_state.json").read_text())["update"] == 4
    resumed = dropout_model(make_model)
    Trainer(config(), resumed, task, tmp_path, progress=False).fit(data, resume=True)
    assert weights_equal(full, resumed)


class NaNAfter(CTCTask):
    """A loss that turns NaN from update ``start`` on for ``count`` micro-batches."""

    def __init__(self, *args, start=2, count=1, **kw):
        super().__init__(*args, **kw)
        self.start, self.count = start, count

    def loss(self, model, batch, update, micro, generator):
        out = super().loss(model, batch, update, micro, generator)
        if update >= self.start and self.count > 0:
            self.count -= 1
            return LossSums(out.loss * float("nan"), out.count)
        return out


def test_non_finite_update_is_skipped_and_counted(tmp_path, make_model, short_data, vocab, capsys):
    model = make_model()
    state = Trainer(config(max_update=4, save_every=0), model, NaNAfter(vocab, count=1), tmp_path,
                    progress=False).fit(short_data)
    assert state.update == 4 and state.skipped_updates == 1 and state.nonfinite_streak == 0
    assert "non-finite loss; update skipped" in capsys.readouterr().err
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_three_non_finite_in_a_row_stop_with_a_checkpoint(tmp_path, make_model, short_data, vocab):
    with pytest.raises(TrainingDiverged, match="3 consecutive updates.*Lower the learning rate"):
        Trainer(config(max_update=10, save_every=0), make_model(), NaNAfter(vocab, start=2, count=99), tmp_path,
                progress=False).fit(short_data)
    saved = json.loads((tmp_path / "checkpoints/update_00000002/trainer_state.json").read_text())
    assert saved["skipped_updates"] == 3


def test_gradient_accumulation_counts_updates(tmp_path, make_model, short_data, vocab):
    calls = []

    class Counting(CTCTask):
        def loss(self, model, batch, update, micro, generator):
            calls.append(update)
            return super().loss(model, batch, update, micro, generator)

    state = Trainer(config(max_update=1, update_freq=2, save_every=0), make_model(), Counting(vocab), tmp_path,
                    progress=False).fit(short_data)
    assert state.update == 1 and state.batches_done == 2 and calls == [0, 0]  # two micro-batches, one update


def test_snapshots_at_fractions_of_the_budget(tmp_path, make_model, short_data, vocab):
    """A 4-update run with snapshot_fractions [0.25, 0.5] writes RUN/snapshot-0.25 at update 1 and
    RUN/snapshot-0.5 at update 2: the weights of that update on the 4-update schedule. A run resumed
    from update 1 writes only the snapshot its checkpoint had not reached, with the same weights."""
    from safetensors.torch import load_file

    def meta(directory):
        return json.loads((directory / "sew_config.json").read_text())

    def weights(directory):
        return load_file(str(directory / "model.safetensors"))

    cfg = config(max_update=4, save_every=1, snapshot_fractions=(0.25, 0.5))
    run = tmp_path / "full"
    Trainer(cfg, make_model(), CTCTask(vocab), run, progress=False).fit(short_data)
    assert meta(run / "snapshot-0.25")["update"] == 1 and meta(run / "snapshot-0.5")["update"] == 2
    assert meta(run / "snapshot-0.5")["metrics"]["snapshot_fraction"] == 0.5
    assert (run / "snapshot-0.5" / "vocab.json").is_file()  # written by the task, as RUN/final
    snap, at_2 = weights(run / "snapshot-0.5"), weights(run / "checkpoints/update_00000002")
    assert snap.keys() == at_2.keys() and all(torch.equal(snap[k], at_2[k]) for k in snap)
    events = [(r["snapshot"], r["update"]) for r in read_log(run, "event") if "snapshot" in r]
    assert events == [("snapshot-0.25", 1), ("snapshot-0.5", 2)]

    resumed = tmp_path / "resumed"
    shutil.copytree(run / "checkpoints/update_00000001", resumed / "checkpoints/update_00000001")
    Trainer(cfg, make_model(), CTCTask(vocab), resumed, progress=False).fit(short_data)
    assert not (resumed / "snapshot-0.25").exists()  # its checkpoint had it already
    again = weights(resumed / "snapshot-0.5")
    assert all(torch.equal(again[k], snap[k]) for k in snap)

    with pytest.raises(ValueError, match=r"train.snapshot_fractions: 1 not strictly between 0 and 1"):
        Trainer(config(snapshot_fractions=(0.5, 1.0)), make_model(), CTCTask(vocab), tmp_path / "bad", progress=False)


def test_a_second_process_on_a_run_directory_is_refused(tmp_path, make_model, short_data, vocab):
    from sew.files import DirectoryInUseError, DirectoryLock

    held = DirectoryLock(tmp_path)  # another training process writing this run directory
    trainer = Trainer(config(max_update=2), make_model(), CTCTask(vocab, MASKS), tmp_path, progress=False)
    with pytest.raises(DirectoryInUseError, match=rf"{tmp_path}.*in use by another process \(pid \d+"):
        trainer.fit(short_data)
    assert not (tmp_path / "log.jsonl").exists() and not (tmp_path / "checkpoints").exists()  # nothing written
    held.release()
    state = Trainer(config(max_update=2), make_model(), CTCTask(vocab, MASKS), tmp_path, progress=False).fit(short_data)
    assert state.update == 2 and read_log(tmp_path, "train")
    DirectoryLock(tmp_path).release()  # fit released the lock when it ended


class FailOnce(CTCTask):
    """At the first micro-batch after ``at`` updates: raise ``error`` or send this process ``signal``."""

    def __init__(self, *args, at=4, error=None, signal=None, **kw):
        super().__init__(*args, **kw)
        self.at, self.error, self.signal, self.fired = at, error, signal, False

    def loss(self, model, batch, update, micro, generator):
        if update == self.at and not self.fired:
            self.fired = True
            if self.error is not None:
                raise self.error
            import os

            os.kill(os.getpid(), self.signal)  # caught by the trainer: a flag, looked at after this update
        return super().loss(model, batch, update, micro, generator)


def test_an_error_inside_the_loop_saves_the_last_update_and_resume_is_exact(tmp_path, make_model, reference_run,
                                                                            vocab):
    _, full, data = reference_run
    with pytest.raises(RuntimeError, match="out of memory"):
        Trainer(config(save_every=0), dropout_model(make_model), FailOnce(vocab, MASKS, error=RuntimeError(
            "out of memory")), tmp_path, progress=False).fit(data)
    assert json.loads((tmp_path / "checkpoints/update_00000004/trainer_state.json").read_text())["update"] == 4
    resumed = dropout_model(make_model)
    Trainer(config(), resumed, CTCTask(vocab, MASKS), tmp_path, progress=False).fit(data, resume=True)
    assert weights_equal(full, resumed)


@pytest.mark.parametrize("name", ["SIGTERM", "SIGUSR1"])
def test_a_preemption_signal_saves_the_update_it_came_in_and_resume_is_exact(tmp_path, make_model, reference_run,
                                                                           vocab, name):
    import signal

    from sew.train.interrupts import Preempted

    _, full, data = reference_run
    before = signal.getsignal(getattr(signal, name))
    task = FailOnce(vocab, MASKS, at=3, signal=getattr(signal, name))
    with pytest.raises(Preempted, match=rf"{name} received: stopped after update 4"):
        Trainer(config(save_every=0), dropout_model(make_model), task, tmp_path, progress=False).fit(data)
    assert signal.getsignal(getattr(signal, name)) == before  # the handler is only there while training
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["update_00000004"]
    assert read_log(tmp_path, "event")[-1]["preempted"] == getattr(signal, name)
    resumed = dropout_model(make_model)
    Trainer(config(), resumed, CTCTask(vocab, MASKS), tmp_path, progress=False).fit(data)
    assert weights_equal(full, resumed)


def test_fp16_overflows_spend_the_budget_and_too_many_stop_the_run(tmp_path, make_model, short_data, vocab,
                                                                  monkeypatch):
    # No fp16 on a CPU: the scaler's verdict (every step skipped) and a scale pushed under the floor are played.
    class Scaler:  # the part of torch's GradScaler the accelerator and the trainer use
        def __init__(self, scale):
            self.value, self.updates = scale, []

        def scale(self, loss):
            return loss

        def get_scale(self):
            return self.value

        def update(self, new_scale=None):
            self.updates.append(new_scale)

        def state_dict(self):
            return {"scale": self.value}

    for scaler, streak in ((None, 3), (Scaler(1e-5), 1)):
        run = tmp_path / f"run{streak}"
        trainer = Trainer(config(max_update=10, save_every=0, max_overflows=3), make_model(), CTCTask(vocab), run,
                          progress=False)
        monkeypatch.setattr(type(trainer.acc), "optimizer_step_was_skipped", property(lambda self: True))
        monkeypatch.setattr(trainer.acc, "scaler", scaler)
        with pytest.raises(TrainingDiverged, match=rf"{streak} fp16 step\(s\) in a row overflowed"):
            trainer.fit(short_data)
        state = json.loads((run / "checkpoints/update_00000000/trainer_state.json").read_text())
        assert state["overflow_steps"] == streak and state["elapsed_seconds"] > 0  # counted, and time spent
        assert read_log(run, "event")[-1]["overflows"] == streak
        if scaler is not None:
            assert scaler.updates[-1] == 1e-4  # held at the floor


def test_runs_of_different_precisions_in_one_process():
    """accelerate fixes mixed precision per process; sew's benchmarks train float32 and bf16 runs in one
    process, so each accelerator must come with the precision its run asked for."""
    from sew.train.setup import make_accelerator

    for precision in ["no", "bf16", "bf16", "no"]:
        acc = make_accelerator(precision, cpu=True)
        assert acc.mixed_precision == precision
        assert acc.state.mixed_precision == precision
