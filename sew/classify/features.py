"""Hidden states of every layer for downstream toolkits (``sew features``), per utterance as safetensors.

State 0 is the input of the first transformer layer, state k the output of layer k (as
transformers' ``hidden_states``). Every family gives them at 50 Hz (20 ms per frame, SUPERB's
downsample rate 320): the squeezed families' 25 Hz states are repeated to 50 Hz, or kept at 25 Hz
with ``rate=25``. Each file ``OUT/NAME.safetensors`` holds ``layer_K`` ``[frames, dim]`` for the
chosen layers, cut to the utterance's valid frames; ``OUT/index.tsv`` lists input, file and frames.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

from sew.data.audio import load_input
from sew.files import save_tensors, write_json
from sew.models.lengths import squeezed_lengths

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")


def parse_layers(spec: str, num_states: int) -> list[int]:
    """``all`` or ``N,M,...`` (negative counts from the end) -> sorted state indices; ValueError naming the bad one."""
    if spec.strip().lower() == "all":
        return list(range(num_states))
    chosen = set()
    for part in spec.split(","):
        try:
            k = int(part)
        except ValueError:
            raise ValueError(f"--layers: {part!r} is not a layer number; use all or N,M (0 = the input of the "
                             f"first layer, {num_states - 1} = the last)") from None
        if not -num_states <= k < num_states:
            raise ValueError(f"--layers: layer {k} does not exist; the model has states 0..{num_states - 1}")
        chosen.add(k % num_states)
    return sorted(chosen)


def audio_inputs(inputs: Iterable[str]) -> list[Path]:
    """Files as given, directories searched recursively for audio files (sorted)."""
    found = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
        else:
            found.append(path)
    return found


@torch.no_grad()
def utterance_states(model, waveform: torch.Tensor, layers: list[int], rate: int = 50) -> dict[str, torch.Tensor]:
    """``{"layer_K": [frames, dim]}`` of one waveform ``[samples]`` at ``rate`` Hz, valid frames only."""
    cfg = model.config
    if rate not in (50, 25) or (rate == 25 and not cfg.squeezes):
        raise ValueError(f"--rate {rate}: {cfg.family} states exist at 50 Hz" + (" and 25 Hz" if cfg.squeezes else ""))
    out = model(waveform[None], output_hidden_states=True, upsample_hidden_states=rate == 50)
    frames = int(out.lengths[0]) if rate == 50 else int(squeezed_lengths(out.lengths, cfg.squeeze_factor)[0])
    return {f"layer_{k}": out.hidden_states[k][0, :frames].float().contiguous().cpu() for k in layers}


def extract_features(model, paths: Iterable[Path], out_dir: str | Path, *, layers: str = "all", rate: int = 50,
                     log=print) -> Iterator[tuple[Path, str | None]]:
    """Write the states of each file; yields ``(path, error or None)``; a bad file never stops the others."""
    encoder = getattr(model, "encoder", model)
    encoder.eval()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    chosen = parse_layers(layers, encoder.config.num_layers + 1)
    rows, names = [], set()
    rf = encoder.config.receptive_field
    from sew.inference import optimize_for_cpu

    fast = optimize_for_cpu(encoder)
    for path in paths:
        wave, _, problem = load_input(str(path), rf)
        if wave is None:
            yield path, problem
            continue
        states = utterance_states(fast, torch.from_numpy(np.ascontiguousarray(wave)), chosen, rate)
        name = re.sub(r"[^\w.-]+", "_", path.stem)
        while name in names:  # two inputs with one stem keep both
            name += "_"
        names.add(name)
        frames = next(iter(states.values())).shape[0]
        save_tensors(out / f"{name}.safetensors", states,
                     metadata={"source": str(path), "frame_rate_hz": str(rate), "layers": ",".join(map(str, chosen))})
        rows.append({"input": str(path), "file": f"{name}.safetensors", "frames": frames})
        yield path, None
    with open(out / "index.tsv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["input", "file", "frames"], delimiter="\t")
        writer.writeheader()
        writer.writerows(rows)
    write_json(out / "features.json", {"family": encoder.config.family, "frame_rate_hz": rate, "layers": chosen,
                                       "num_states": encoder.config.num_layers + 1, "dim": encoder.config.hidden_size,
                                       "files": len(rows)})
