"""``sew models``: every preset with its size and frame rates."""

from __future__ import annotations

import json

import torch

from sew.models.config import load_config, preset_names


def describe(name: str, vocab_size: int = 32) -> dict:
    """Parameters (built on the meta device: nothing allocated) and frame rates of a preset."""
    from sew.models.encoder import SpeechEncoder

    cfg = load_config(name, vocab_size=vocab_size)
    with torch.device("meta"):
        model = SpeechEncoder(cfg)
    feature_rate = 16000 / cfg.frame_stride
    return {
        "name": name, "family": cfg.family, "params_m": round(model.num_parameters() / 1e6, 2),
        "hidden_size": cfg.hidden_size, "layers": cfg.num_layers, "heads": cfg.num_heads,
        "feature_rate_hz": feature_rate,
        "transformer_rate_hz": feature_rate / cfg.squeeze_factor if cfg.squeezes else feature_rate,
        "receptive_field": cfg.receptive_field,
    }


def run(args) -> int:
    rows = [describe(name, args.vocab_size) for name in preset_names()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'preset':18s} {'family':9s} {'params':>9s} {'width':>6s} {'layers':>6s} {'heads':>5s} "
          f"{'features':>9s} {'transformer':>12s}")
    for r in rows:
        print(f"{r['name']:18s} {r['family']:9s} {r['params_m']:8.2f}M {r['hidden_size']:6d} {r['layers']:6d} "
              f"{r['heads']:5d} {r['feature_rate_hz']:7.0f}Hz {r['transformer_rate_hz']:10.0f}Hz")
    print(f"\nParameter counts include a CTC head over {args.vocab_size} symbols. "
          "Build one with sew.build_model(NAME, vocab_size=...).")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("models", help="list the model presets with parameter counts and frame rates",
                       description="List every model preset in configs/model/ with its parameter count and frame rates.")
    p.add_argument("--vocab-size", type=int, default=32, help="CTC head size used in the counts (default: 32)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)
