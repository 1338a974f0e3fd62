"""A tiny labelled corpus of tones and noise, in canonical manifest form (tsv + .label)."""

from __future__ import annotations

import numpy as np
import pytest

from sew.data.audio import write_flac
from sew.data.manifest import write_split
from sew.data.records import Utterance

CLASSES = {"low": 300.0, "high": 2200.0, "noise": None}
SAMPLES = 6400  # 0.4 s


def clip(kind: str, rng: np.random.Generator, samples: int = SAMPLES) -> np.ndarray:
    t = np.arange(samples) / 16000.0
    freq = CLASSES[kind]
    if freq is None:
        wave = rng.standard_normal(samples) * 0.3
    else:
        wave = np.sin(2 * np.pi * freq * (1 + 0.05 * rng.standard_normal()) * t + rng.uniform(0, 6.28))
    return (wave * rng.uniform(0.2, 0.8) + 0.01 * rng.standard_normal(samples)).astype(np.float32)


def make_tone_corpus(root, counts=(("train", 10), ("dev", 3), ("test", 4)), seed: int = 0, samples: int = SAMPLES):
    rng = np.random.default_rng(seed)
    for split, per_class in counts:
        utts = []
        for kind in CLASSES:
            for k in range(per_class):
                path = root / "audio" / split / f"{kind}-{k}.flac"
                write_flac(path, clip(kind, rng, samples + int(rng.integers(0, 1600))))
                utts.append(Utterance(f"{kind}-{k}", str(path), None, None, label=kind))
        from sew.data.audio import header_num_samples

        utts = [Utterance(u.id, u.path, header_num_samples(u.path), None, label=u.label) for u in utts]
        write_split(root, split, utts, root=f"audio/{split}")
    return root


@pytest.fixture(scope="session")
def tone_corpus(tmp_path_factory):
    return make_tone_corpus(tmp_path_factory.mktemp("tones"))
