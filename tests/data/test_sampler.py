from collections import Counter

import numpy as np
import pytest

from sew.data import rejects
from sew.data.rejects import RejectLog
from sew.data.sampler import LengthBucketSampler

LENGTHS = np.random.default_rng(0).integers(300, 5000, size=257).tolist()


def _shards(n, epoch=0, **kw):
    samplers = [LengthBucketSampler(LENGTHS, 20000, num_shards=n, shard_index=k, seed=3,
                                    rejects_log=RejectLog(warn=False), **kw) for k in range(n)]
    for s in samplers:
        s.set_epoch(epoch)
    return [list(s) for s in samplers]


@pytest.mark.parametrize("num_shards", [1, 2, 3])
def test_every_sample_once_per_epoch_equal_batch_counts(num_shards):
    usable = [i for i, n in enumerate(LENGTHS) if n >= 400]
    for epoch in (0, 1):
        shards = _shards(num_shards, epoch)
        assert len({len(batches) for batches in shards}) == 1  # no shard waits on another
        seen = Counter(i for batches in shards for batch in batches for i in batch)
        assert sorted(seen) == usable and set(seen.values()) == {1}
        for batches in shards:  # padded size within budget
            assert all(len(b) * max(LENGTHS[i] for i in b) <= 20000 for b in batches)


def test_batches_are_length_bucketed_and_shuffled_by_seed_and_epoch():
    (e0,), (e1,) = _shards(1, 0), _shards(1, 1)
    assert e0 == _shards(1, 0)[0] and e0 != e1  # same seed and epoch -> same; new epoch -> new order
    spread = [max(LENGTHS[i] for i in b) - min(LENGTHS[i] for i in b) for b in e0]
    assert np.median(spread) < 500  # buckets hold similar lengths (the range is 300-5000)
    firsts = [LENGTHS[b[0]] for b in e0]
    assert firsts != sorted(firsts)  # batch order is shuffled


def test_filtered_items_go_to_the_reject_log():
    log = RejectLog(warn=False)
    names = [f"u{i}" for i in range(4)]
    s = LengthBucketSampler([100, 1000, 9000, 2000], 8000, min_length=400, max_length=5000, rejects_log=log,
                            names=names)
    assert sorted(i for b in s for i in b) == [1, 3]
    assert [(i.path, i.reason) for i in log.items] == [("u0", rejects.TOO_SHORT), ("u2", rejects.TOO_LONG)]


def test_uneven_batch_count_is_split_not_dropped():
    # 3 items that fit one batch, 2 shards: the batch is split so each shard gets one.
    shards = [list(LengthBucketSampler([500, 600, 700], 10000, num_shards=2, shard_index=k)) for k in range(2)]
    assert [len(b) for b in shards] == [1, 1] and sorted(i for b in shards for i in b[0]) == [0, 1, 2]
    # fewer items than shards: repeat (the only case with duplicates), every shard still gets a batch
    shards = [list(LengthBucketSampler([500, 600], 10000, num_shards=3, shard_index=k)) for k in range(3)]
    assert all(len(b) == 1 for b in shards) and {i for b in shards for i in b[0]} == {0, 1}


def test_drop_last_drops_remainder_batches():
    full = LengthBucketSampler(LENGTHS, 20000, num_shards=3, shard_index=0, drop_last=True)
    n = len(full.epoch_batches())
    assert n % 3 == 0 and len(full) == n // 3


@pytest.mark.parametrize("num_shards", [1, 2])
def test_restored_state_yields_the_same_remaining_batches(num_shards):
    def make():
        return LengthBucketSampler(LENGTHS, 20000, num_shards=num_shards, shard_index=num_shards - 1, seed=7)

    a = make()
    a.set_epoch(2)
    it = iter(a)
    consumed = [next(it) for _ in range(5)]
    state = a.state_dict()
    remaining = list(it)
    assert state["epoch"] == 2 and state["batches_done"] == 5
    b = make()
    b.load_state_dict(state)
    assert list(b) == remaining and consumed + remaining == list(make_epoch(make(), 2))
    assert list(b) == list(make_epoch(make(), 2))  # the next pass is a full epoch again
    c = make()
    c.load_state_dict(a.state_dict(batches_done=3))  # a loop that prefetched reports its own step
    assert list(c) == consumed[3:] + remaining


def make_epoch(sampler, epoch):
    sampler.set_epoch(epoch)
    return sampler


def test_state_from_other_settings_is_refused():
    a = LengthBucketSampler(LENGTHS, 20000, seed=1)
    b = LengthBucketSampler(LENGTHS, 30000, seed=1)
    with pytest.raises(ValueError, match="max_tokens"):
        b.load_state_dict(a.state_dict())
