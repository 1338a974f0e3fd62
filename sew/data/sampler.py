"""Length-bucketed batches filled up to a number of padded audio samples, sharded and resumable.

A batch of ``n`` utterances whose longest has ``L`` samples costs ``n * L`` (its padded
size, as fairseq counts it); batches are filled up to ``max_tokens``. Each epoch the order
is drawn from ``(seed, epoch)``: utterances are shuffled, sorted by length (stable, so equal
lengths stay shuffled), cut into batches, and the batches shuffled. Every shard computes the
same list and takes every ``num_shards``-th batch.

Equal batch counts per shard (so that distributed training never waits on a shard that ran
out): when the batch count does not divide by ``num_shards``, the largest batches are split
in two until it does, so each utterance is still used exactly once per epoch over all
shards. Only when there are fewer utterances than shards are batches repeated. With
``drop_last=True`` the remainder batches are dropped instead (their utterances skip that epoch).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from sew.data import rejects
from sew.data.manifest import RECEPTIVE_FIELD
from sew.data.rejects import RejectLog


class EpochIndex(int):
    """A dataset index that carries the epoch it was drawn in. Data-loader workers hold copies of the dataset
    made when they started (persistent workers keep them for the whole run), so an epoch set on the
    dataset in the training process never reaches them; the index does, and crops follow the epoch."""

    epoch: int

    def __new__(cls, index: int, epoch: int) -> "EpochIndex":
        obj = super().__new__(cls, index)
        obj.epoch = int(epoch)
        return obj

    def __reduce__(self):
        return EpochIndex, (int(self), self.epoch)

    def __repr__(self) -> str:
        return f"EpochIndex({int(self)}, epoch={self.epoch})"


class LengthBucketSampler:
    """Yields lists of dataset indices for one shard; ``set_epoch`` before each epoch."""

    def __init__(self, lengths: Sequence[int], max_tokens: int, *, min_length: int = RECEPTIVE_FIELD,
                 max_length: int | None = None, shuffle: bool = True, seed: int = 0, num_shards: int = 1,
                 shard_index: int = 0, drop_last: bool = False, rejects_log: RejectLog | None = None,
                 names: Sequence[str] | None = None) -> None:
        """``lengths[i]``: samples of item ``i`` (after any cropping); ``names`` label items in reports."""
        if not 0 <= shard_index < num_shards:
            raise ValueError(f"shard_index must be in [0, {num_shards}), got {shard_index}")
        if max_tokens <= 0:
            raise ValueError(f"max_tokens must be positive, got {max_tokens}")
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.max_tokens = int(max_tokens)
        self.min_length = int(min_length)
        self.max_length = min(int(max_length), self.max_tokens) if max_length is not None else self.max_tokens
        self.shuffle, self.seed, self.drop_last = shuffle, int(seed), drop_last
        self.num_shards, self.shard_index = int(num_shards), int(shard_index)
        self.epoch = 0
        self._start = 0  # batches of this epoch already consumed (set by load_state_dict / iteration)
        self.indices = self._filter(rejects_log if rejects_log is not None else RejectLog(), names)
        if len(self.indices) == 0:
            raise ValueError(f"no utterance has a length in [{self.min_length}, {self.max_length}] samples")

    def _filter(self, log: RejectLog, names: Sequence[str] | None) -> np.ndarray:
        """Indices of usable items; the others go to ``log`` (too short / too long)."""
        keep = []
        for i, n in enumerate(self.lengths.tolist()):
            name = names[i] if names is not None else f"item {i}"
            if n < self.min_length:
                log.reject(name, rejects.TOO_SHORT, None, f"{n} samples < min_length {self.min_length}")
            elif n > self.max_length:
                log.reject(name, rejects.TOO_LONG, None, f"{n} samples > max length {self.max_length}")
            else:
                keep.append(i)
        return np.asarray(keep, dtype=np.int64)

    # -- the batches ------------------------------------------------------------------------------
    def epoch_batches(self, epoch: int | None = None) -> list[list[int]]:
        """Every batch of ``epoch`` (all shards), in order; shard ``k`` takes ``[k::num_shards]``."""
        epoch = self.epoch if epoch is None else epoch
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(self.indices) if self.shuffle else self.indices
        order = order[np.argsort(self.lengths[order], kind="stable")]
        batches, current, longest = [], [], 0
        for i in order.tolist():  # ascending lengths: the newcomer is the longest
            n = int(self.lengths[i])
            if current and (len(current) + 1) * max(longest, n) > self.max_tokens:
                batches.append(current)
                current, longest = [], 0
            current.append(i)
            longest = max(longest, n)
        if current:
            batches.append(current)
        if self.shuffle:
            batches = [batches[j] for j in rng.permutation(len(batches))]
        return self._equalize(batches)

    def _equalize(self, batches: list[list[int]]) -> list[list[int]]:
        """Make the batch count a multiple of ``num_shards`` (see the module docstring)."""
        k = self.num_shards
        if len(batches) % k == 0:
            return batches
        if self.drop_last and len(batches) >= k:
            return batches[: len(batches) - len(batches) % k]
        while len(batches) % k:
            j = max(range(len(batches)), key=lambda b: len(batches[b]))
            if len(batches[j]) < 2:
                break
            half = len(batches[j]) // 2
            batches[j:j + 1] = [batches[j][:half], batches[j][half:]]
        repeat = 0
        while len(batches) % k:  # fewer utterances than shards: repeat from the start
            batches.append(batches[repeat])
            repeat += 1
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        """This shard's batches of the epoch from where it stands, as ``EpochIndex`` lists."""
        mine = self.epoch_batches()[self.shard_index::self.num_shards]
        while self._start < len(mine):
            self._start += 1
            yield [EpochIndex(i, self.epoch) for i in mine[self._start - 1]]
        self._start = 0

    def __len__(self) -> int:
        """Batches per shard in the current epoch."""
        return len(self.epoch_batches()) // self.num_shards

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's order; a new epoch starts at its first batch."""
        if epoch != self.epoch:
            self._start = 0
        self.epoch = int(epoch)

    # -- resuming ----------------------------------------------------------------------------------
    def state_dict(self, batches_done: int | None = None) -> dict:
        """Where this shard stands: the epoch and the batches of it already consumed.

        Iterating the sampler counts batches as it yields them; a ``DataLoader`` fetches
        ahead, so a training loop should pass ``batches_done`` (its step within the epoch).
        """
        return {"epoch": self.epoch, "batches_done": self._start if batches_done is None else int(batches_done),
                "seed": self.seed, "num_shards": self.num_shards, "num_items": int(len(self.indices)),
                "max_tokens": self.max_tokens}

    def load_state_dict(self, state: dict) -> None:
        """Resume: the next iteration yields the batch after the last one consumed."""
        for key in ("seed", "num_shards", "num_items", "max_tokens"):
            mine = getattr(self, key) if key != "num_items" else len(self.indices)
            if state.get(key) != mine:
                raise ValueError(f"sampler state has {key}={state.get(key)}, this sampler has {mine}; "
                                 "resume with the same data and batching settings")
        self.epoch = int(state["epoch"])
        self._start = int(state["batches_done"])
