import pytest
import torch

from sew.train.masking import MaskingConfig, compute_channel_mask, compute_masks, compute_time_mask, update_generator


def test_time_mask_never_on_padding_and_covers_expected_share():
    lengths = torch.tensor([200, 120, 37])
    mask = compute_time_mask(lengths, 200, mask_prob=0.65, mask_length=10, generator=torch.Generator().manual_seed(0))
    assert mask.shape == (3, 200) and mask.dtype == torch.bool
    for row, n in zip(mask, lengths.tolist()):
        assert not row[n:].any()
    # fairseq draws int(0.65 * n / 10 + u) spans; overlaps lower the covered share below 65 %
    share = mask[0].float().mean().item()
    assert 0.3 < share <= 0.7


def test_time_mask_spans_have_mask_length_and_min_masks():
    lengths = torch.tensor([50])
    mask = compute_time_mask(lengths, 60, mask_prob=0.0, mask_length=5, min_masks=1,
                             generator=torch.Generator().manual_seed(3))
    assert int(mask.sum()) == 5
    idx = mask[0].nonzero().flatten()
    assert (idx[-1] - idx[0]).item() == 4  # one contiguous span


def test_short_utterance_gets_at_most_its_own_length():
    mask = compute_time_mask(torch.tensor([3, 0]), 10, 0.9, 10, min_masks=2, generator=torch.Generator().manual_seed(0))
    assert mask[0, :3].all() and not mask[0, 3:].any()
    assert not mask[1].any()


def test_masks_are_reproducible_from_the_generator_seed():
    cfg = MaskingConfig(mask_prob=0.5, mask_length=4, mask_channel_prob=0.3, mask_channel_length=8)
    lengths = torch.tensor([40, 25])
    a = compute_masks(cfg, lengths, 40, 64, update_generator(1, 7))
    b = compute_masks(cfg, lengths, 40, 64, update_generator(1, 7))
    c = compute_masks(cfg, lengths, 40, 64, update_generator(1, 8))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_channel_mask_and_off_switches():
    mask = compute_channel_mask(4, 256, 0.5, 64, generator=torch.Generator().manual_seed(0))
    assert mask.shape == (4, 256)
    assert mask.any(dim=1).sum() >= 1
    assert compute_masks(MaskingConfig(), torch.tensor([10]), 10, 8, torch.Generator()) == (None, None)


def test_bad_config_names_the_field():
    with pytest.raises(ValueError, match="mask_prob"):
        MaskingConfig(mask_prob=1.5)


def test_masks_start_at_start_update_in_ctc_training(vocab, train_set):
    """Before ``start_update`` a CTC update is the unmasked one; from it on, the masked one."""
    from sew.asr.task import CTCTask
    from sew.data.dataset import collate
    from tests.train.conftest import tiny_model

    model = tiny_model(len(vocab), feature_dropout=0.0, hidden_dropout=0.0, attention_dropout=0.0,
                       activation_dropout=0.0, final_dropout=0.0).train()
    batch = collate([train_set[i] for i in range(3)])
    masks = dict(mask_prob=0.5, mask_length=4, mask_channel_prob=0.2, mask_channel_length=8)
    delayed = CTCTask(vocab, MaskingConfig(**masks, start_update=5))
    always, never = CTCTask(vocab, MaskingConfig(**masks)), CTCTask(vocab, MaskingConfig())

    def loss(task, update):
        with torch.no_grad():
            return float(task.loss(model, batch, update, 0, update_generator(0, update)).loss)

    assert loss(delayed, 4) == loss(never, 4) != loss(always, 4)
    assert loss(delayed, 5) == loss(always, 5) != loss(never, 5)
    with pytest.raises(ValueError, match="start_update"):
        MaskingConfig(start_update=-1)
