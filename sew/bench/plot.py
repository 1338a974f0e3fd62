"""The paper's Figure 1: error rate against average inference time per utterance."""

from __future__ import annotations

from pathlib import Path

FAMILY_STYLE = {"sew-d": ("tab:red", "o"), "sew": ("tab:blue", "s"), "wav2vec2": ("tab:gray", "^")}
FAMILY_NAME = {"sew-d": "SEW-D", "sew": "SEW", "wav2vec2": "wav2vec 2.0"}


def pareto_plot(speed: list[dict], wer: list[dict], path: str | Path, metrics=("wer", "cer"),
                split: str | None = None) -> Path:
    """WER and CER (y) against our ms per utterance (x): one point per model, a line per family;
    a model-card WER (``card_wer``) as a hollow marker beside ours."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    times = {r["model"]: r["ms_per_utterance"] for r in speed if r["implementation"] == "sew"}
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 4.2), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for family, (color, marker) in FAMILY_STYLE.items():
            points = sorted((times[r["model"]], r[metric], r["model"]) for r in wer
                            if r["family"] == family and r["model"] in times)
            if not points:
                continue
            xs, ys, names = zip(*points)
            ax.plot(xs, ys, color=color, marker=marker, label=FAMILY_NAME[family])
            for x, y, name in points:
                ax.annotate(name, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
            cards = [(times[r["model"]], r[f"card_{metric}"]) for r in wer
                     if r["family"] == family and r["model"] in times and r.get(f"card_{metric}") is not None]
            if cards:
                ax.scatter(*zip(*cards), facecolors="none", edgecolors=color, marker=marker, s=60,
                           label=f"{FAMILY_NAME[family]} (model card)")
        ax.margins(x=0.15, y=0.1)  # room for the labels of the outermost points
        ax.set_xlabel("average inference time per utterance (ms)")
        on = f" ({split})" if split else ""
        ax.set_ylabel(f"{metric.upper()}{on} (%)")
        ax.set_title(f"{metric.upper()}{on} against inference time")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
        else:  # nothing timed (the timing failed): an empty plot that says so
            ax.text(0.5, 0.5, "no model was timed", transform=ax.transAxes, ha="center", va="center")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
