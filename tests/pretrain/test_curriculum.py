"""The masking curriculum (``objective.single_frame_updates``): single frames first, then the spans."""

from __future__ import annotations

import pytest
import torch

from sew.cli import main
from sew.pretrain import ObjectiveConfig
from sew.pretrain.task import PretrainTask
from sew.train.health import pretrain_monitor
from sew.train.masking import compute_time_mask

from ..train.test_health import HEALTHY, records
from .helpers import read_log, tiny_args


def runs_of(mask: torch.Tensor) -> list[int]:
    """Lengths of the runs of masked frames in every row."""
    out = []
    for row in mask.tolist():
        run = 0
        for masked in row + [False]:
            if masked:
                run += 1
            elif run:
                out.append(run)
                run = 0
    return out


def test_masks_are_single_frames_before_the_switch_and_spans_from_it():
    objective = ObjectiveConfig(single_frame_updates=5, single_frame_prob=0.3, mask_prob=0.65, mask_length=10)
    task = PretrainTask(objective)
    lengths, frames = torch.tensor([200, 150]), 200

    def at(update: int) -> torch.Tensor:
        return task.time_mask(lengths, frames, torch.Generator().manual_seed(7), update)

    single = compute_time_mask(lengths, frames, 0.3, 1, 2, torch.Generator().manual_seed(7))
    spans = compute_time_mask(lengths, frames, 0.65, 10, 2, torch.Generator().manual_seed(7))
    assert torch.equal(at(0), single) and torch.equal(at(4), single)
    assert torch.equal(at(5), spans) and torch.equal(at(10_000), spans)
    assert min(runs_of(spans)) >= 10 and max(runs_of(single)) < 10
    assert not at(4)[1, 150:].any() and not at(5)[1, 150:].any()  # never on padding
    # Without a curriculum (the official recipe) the spans start at update 0.
    assert torch.equal(PretrainTask(ObjectiveConfig(mask_prob=0.65, mask_length=10)).time_mask(
        lengths, frames, torch.Generator().manual_seed(7), 0), spans)


@pytest.mark.parametrize("field, value", [("single_frame_updates", -1), ("single_frame_prob", 1.0)])
def test_bad_curriculum_fields_are_named(field, value):
    with pytest.raises(ValueError, match=f"objective config field '{field}'"):
        ObjectiveConfig(**{field: value})


def test_the_loss_rise_at_the_switch_is_not_divergence():
    falling_then_harder = {**HEALTHY, "contrastive": lambda u: 2.0 - u / 2000 if u < 500 else 2.9 - u / 4000}
    plain = pretrain_monitor({"codebook_groups": 2, "codebook_entries": 64}, {"warmup_updates": 10})
    plain.replay(records(100, **falling_then_harder))
    assert [f.symptom for f in plain.findings] == ["divergence"]  # what the same rise means without a switch
    curriculum = pretrain_monitor({"codebook_groups": 2, "codebook_entries": 64, "single_frame_updates": 500},
                                  {"warmup_updates": 10})
    curriculum.replay(records(100, **falling_then_harder))
    assert curriculum.healthy, [f.message for f in curriculum.findings]
    # A real rise after the switch is still divergence, measured from the new task's minimum.
    curriculum = pretrain_monitor({"codebook_groups": 2, "codebook_entries": 64, "single_frame_updates": 500},
                                  {"warmup_updates": 10})
    curriculum.replay(records(100, **{**falling_then_harder,
                                      "contrastive": lambda u: 0.9 if u < 500 else (1.6 if u < 800 else 2.6)}))
    assert [f.symptom for f in curriculum.findings] == ["divergence"]
    assert "minimum 1.600" in curriculum.findings[0].message


def test_a_run_logs_its_mask_length_and_switches(tmp_path):
    run = tmp_path / "run"
    assert main(tiny_args(run, 4, "--set", "objective.single_frame_updates=2", "--set", "objective.mask_length=10",
                          "--set", "objective.mask_prob=0.65")) == 0
    logged = {r["update"]: r["mask_length"] for r in read_log(run)}
    assert logged == {1: 1, 2: 1, 3: 10, 4: 10}
