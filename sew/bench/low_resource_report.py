"""The low-resource profile's numbers and result files (``sew.bench.low_resource``): CER reductions,
means per model, preset and checkpoint, the checks, the tables, results.json / .md / .csv, the plot and
the comparison with a baseline."""

from __future__ import annotations

import csv
import statistics
from pathlib import Path

from sew.bench.low_resource_runs import FRACTIONS

PRETRAINED_RATIO = 0.75  # the check: pretrained test CER <= this x from scratch
PLATEAU_CER = 90.0  # the check: from-scratch dev CER below this (%)


# -- numbers --------------------------------------------------------------------------------------
def add_reductions(runs: list[dict]) -> None:
    """``cer_reduction`` of every pretrained run: 1 - its test CER / the same model and seed's from scratch."""
    scratch = {(r["model"], r["seed"]): r for r in runs if r["checkpoint"] == "scratch"}
    for r in runs:
        base = scratch.get((r["model"], r["seed"]))
        if r["checkpoint"] != "scratch" and base is not None and base["cer"]:
            r["cer_reduction"] = round(1 - r["cer"] / base["cer"], 3)


def mean(values) -> float | None:
    """The mean of the values given (None when there are none); whole numbers stay whole."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    value = statistics.fmean(values)
    return int(value) if value.is_integer() and all(isinstance(v, int) for v in values) else round(value, 3)


def mean_rows(runs: list[dict], pretrain_minutes: float) -> list[dict]:
    """Per model, pretraining preset and checkpoint (from scratch once per model): means over seeds."""
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault((r["model"], r["preset"], r["checkpoint"]), []).append(r)
    out = []
    for (model, preset, checkpoint), rows in groups.items():
        rows = sorted(rows, key=lambda r: r["seed"])
        out.append({"model": model, "family": rows[0]["family"], "preset": preset, "checkpoint": checkpoint,
                    "pretrain_minutes": round(rows[0]["fraction"] * pretrain_minutes, 2),
                    "seeds": [r["seed"] for r in rows], "cer": mean(r["cer"] for r in rows),
                    "cer_runs": [r["cer"] for r in rows], "wer": mean(r["wer"] for r in rows),
                    "cer_reduction": mean(r.get("cer_reduction") for r in rows),
                    "updates": mean(r["updates"] for r in rows), "wall_seconds": mean(r["wall_seconds"] for r in rows)})
    order = {m: i for i, m in enumerate(dict.fromkeys(r["model"] for r in runs))}
    return sorted(out, key=lambda r: (order[r["model"]], r["preset"] or "", r["pretrain_minutes"]))


def check_claims(runs: list[dict]) -> list[dict]:
    """The profile's checks, each ``{"check", "passed" (None: not measurable here), "detail"}``:

    * pretraining pays: test CER after pretraining (P) <= 0.75 x from scratch, per model, seed and preset;
    * the from-scratch runs are off the CTC plateau: dev CER < 90 %, per model and seed (otherwise the
      comparisons above are against a model that learned nothing);
    * SEW-D benefits at least as much as wav2vec 2.0: its mean relative CER reduction at P >= theirs;
    * SEW-D pretrained for P/4 is at least as good as wav2vec 2.0 pretrained for P (mean test CER).
    """
    out = []
    scratch = {(r["model"], r["seed"]): r for r in runs if r["checkpoint"] == "scratch"}
    for r in runs:
        base = scratch.get((r["model"], r["seed"]))
        if r["checkpoint"] == "P" and base is not None:
            ratio = r["cer"] / base["cer"] if base["cer"] else float("inf")
            out.append({"check": f"{r['model']} seed {r['seed']}, {r['preset']}: pretrained test CER <= "
                                 f"{PRETRAINED_RATIO:g} x from scratch",
                        "passed": r["cer"] <= PRETRAINED_RATIO * base["cer"],
                        "detail": f"{r['cer']:.2f}% vs {base['cer']:.2f}% from scratch (x{ratio:.2f})"})
    for (model, seed), r in scratch.items():
        dev = r.get("dev_cer")
        out.append({"check": f"{model} seed {seed}: from-scratch dev CER below {PLATEAU_CER:g}% (off the plateau)",
                    "passed": dev is not None and dev < PLATEAU_CER,
                    "detail": f"dev CER {dev:.2f}%" if dev is not None else "no dev CER (validation did not run)"})
    presets = list(dict.fromkeys(r["preset"] for r in runs if r["preset"]))
    for preset in presets:
        def at(model: str, label: str, key: str, preset=preset) -> float | None:
            return mean(r.get(key) for r in runs
                        if r["model"] == model and r["preset"] == preset and r["checkpoint"] == label)

        tuned = list(dict.fromkeys(r["model"] for r in runs if r["preset"] == preset))
        sewd = [m for m in tuned if family(runs, m) == "sew-d"]
        w2v2 = [m for m in tuned if family(runs, m) == "wav2vec2"]
        if not (sewd and w2v2):
            for name in ("SEW-D's relative CER reduction at P >= wav2vec 2.0's", "SEW-D at P/4 <= wav2vec 2.0 at P"):
                out.append({"check": f"{preset}: {name}", "passed": None,
                            "detail": "not measured: needs a SEW-D and a wav2vec 2.0 model pretrained with it"})
            continue
        for a in sewd:
            for b in w2v2:
                ra, rb = at(a, "P", "cer_reduction"), at(b, "P", "cer_reduction")
                out.append({"check": f"{preset}: {a}'s relative CER reduction at P >= {b}'s",
                            "passed": None if ra is None or rb is None else ra >= rb,
                            "detail": f"{fmt(ra)} vs {fmt(rb)} (mean over seeds, 1 - pretrained / scratch)"})
                ca, cb = at(a, "P/4", "cer"), at(b, "P", "cer")
                out.append({"check": f"{preset}: {a} at P/4 <= {b} at P (test CER)",
                            "passed": None if ca is None or cb is None else ca <= cb,
                            "detail": f"{fmt(ca)}% vs {fmt(cb)}% (mean over seeds)"})
    return out


def family(runs: list[dict], model: str) -> str | None:
    return next((r["family"] for r in runs if r["model"] == model), None)


def fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def check_line(check: dict) -> str:
    verdict = {True: "PASS", False: "FAIL", None: "n/a"}[check["passed"]]
    return f"- {verdict}: {check['check']} ({check['detail']})"


# -- result files ---------------------------------------------------------------------------------
SUMMARY_COLUMNS = [("model", "model"), ("preset", "pretraining"), ("checkpoint", "checkpoint"),
                   ("pretrain_minutes", "pretraining min"), ("seeds", "seeds"), ("cer", "test CER %"),
                   ("cer_runs", "CER per seed"), ("wer", "test WER %"), ("cer_reduction", "rel. CER reduction"),
                   ("updates", "updates"), ("wall_seconds", "wall s")]
PRETRAIN_COLUMNS = [("model", "model"), ("seed", "seed"), ("preset", "preset"), ("objective", "objective"),
                    ("updates", "updates"), ("minutes", "min"), ("audio_hours", "audio h"),
                    ("train_loss", "train loss"), ("dev_loss", "dev loss"), ("train_accuracy", "train acc"),
                    ("dev_accuracy", "dev acc"), ("train_code_perplexity", "code ppl"),
                    ("train_prob_perplexity", "prob ppl"), ("dev_code_perplexity", "dev code ppl"),
                    ("dev_prob_perplexity", "dev prob ppl"), ("snapshots", "P/4, P/2 at update"),
                    ("health", "health")]
RUN_COLUMNS = [("model", "model"), ("seed", "seed"), ("preset", "pretraining"), ("checkpoint", "checkpoint"),
               ("pretrain_minutes", "pretraining min"), ("pretrain_updates", "pretraining updates"),
               ("updates", "updates"), ("train_seconds", "train s"), ("wall_seconds", "wall s"),
               ("dev_cer", "dev CER %"), ("wer", "test WER %"), ("cer", "test CER %"),
               ("cer_reduction", "rel. CER reduction"), ("health", "health")]
CSV_FIELDS = ["model", "family", "seed", "preset", "checkpoint", "fraction", "pretrain_minutes", "pretrain_updates",
              "reference", "max_minutes", "max_update", "updates", "train_seconds", "wall_seconds", "dev_wer",
              "dev_cer", "wer", "cer", "cer_reduction", "test_utterances", "healthy", "health", "run_dir"]


def markdown_summary(summary: list[dict]) -> str:
    from sew.bench.report import markdown_table

    shown = [{**r, "preset": r["preset"] or "-", "seeds": ", ".join(map(str, r["seeds"])),
              "cer_runs": " / ".join(fmt(c) for c in r["cer_runs"])} for r in summary]
    return markdown_table(shown, SUMMARY_COLUMNS)


def pretraining_table(rows: list[dict]) -> str:
    from sew.bench.report import markdown_table

    shown = [{**r, "health": "; ".join(r["health"]) or ("ok" if r["healthy"] else "not monitored"),
              "snapshots": ", ".join(str(r["checkpoints"][k]["update"]) if k in r["checkpoints"] else "missing"
                                     for k in ("P/4", "P/2"))} for r in rows]
    return markdown_table(shown, PRETRAIN_COLUMNS)


def runs_table(runs: list[dict]) -> str:
    from sew.bench.report import markdown_table

    shown = [{**r, "preset": r["preset"] or "-", "health": "; ".join(r["health"]) or "ok",
              "checkpoint": r["checkpoint"] + (" (reference)" if r.get("reference") else "")} for r in runs]
    return markdown_table(shown, RUN_COLUMNS)


def write_results_files(out: Path, results: dict, tables: dict, check_lines: str, failures: str) -> None:
    from sew.bench.report import write_results

    ref, p = results["reference"], results["profile"]
    if ref:
        rule = (f"Fine-tuning at equal updates: the reference run ({ref['model']}, seed {ref['seed']}, from scratch) "
                f"trained for {ref['max_minutes']:g} min"
                + (f" (at most {ref['max_update']} updates)" if ref.get("max_update") else "")
                + f" and made U = {ref['updates']} updates; every other fine-tuning run got exactly U updates and no "
                "time limit. Equal updates, not equal wall clock: at equal wall clock SEW-D already wins from "
                "scratch, which would hide what pretraining adds. Each run's wall clock is in the runs table.")
    else:
        rule = "No reference run finished, so no fine-tuning ran at equal updates (see Failures)."
    smoke = ("**Smoke test (--smoke): budgets under the minimums; these numbers test the machinery and measure "
             "nothing.**\n\n" if results["smoke"] else "")
    text = (f"{smoke}data: {results['data']['description']}\n\n"
            f"Budget per model and seed: {p['pretrain_minutes']:g} min of pretraining per preset "
            f"({', '.join(p['pretrain_presets'])}; the P/4 and P/2 encoders are snapshots of the same run), then "
            f"fine-tuning with the {p['finetune_preset']} recipe on {results['data']['labeled_minutes']:.1f} min of "
            f"labeled audio from scratch and from each encoder. {rule}\n\n"
            f"## Test CER against pretraining (mean over seeds)\n\n{tables['summary']}\n\n"
            f"## Checks\n\n{check_lines}\n\n"
            f"## Pretraining\n\n{tables['pretraining']}\n\n## Fine-tuning runs\n\n{tables['runs']}\n\n{failures}")
    write_results(out, results, "sew bench: low-resource", text.rstrip())
    with open(out / "results.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for r in results["runs"]:
            writer.writerow({**r, "health": "; ".join(r["health"])})


def cer_plot(summary: list[dict], runs: list[dict], profile, path: Path) -> Path:
    """Test CER against pretraining minutes (0: from scratch, P/4, P/2, P): a line per model and
    pretraining preset through the means over seeds, each seed's run a point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sew.bench.plot import FAMILY_STYLE

    fig, ax = plt.subplots(figsize=(7, 4.5))
    lines = ["-", "--", ":", "-."]
    models = list(dict.fromkeys(r["model"] for r in summary))
    for i, preset in enumerate(profile.pretrain_presets):
        for model in models:
            color, marker = FAMILY_STYLE.get(family(runs, model), ("black", "o"))
            points = [r for r in summary if r["model"] == model and r["preset"] in (None, preset)
                      and r["cer"] is not None]
            if not any(r["preset"] == preset for r in points):
                continue
            ax.plot([r["pretrain_minutes"] for r in points], [r["cer"] for r in points], color=color, marker=marker,
                    linestyle=lines[i % len(lines)], label=f"{model} ({preset})")
            seeds = [r for r in runs if r["model"] == model and r["preset"] in (None, preset)]
            ax.scatter([r["fraction"] * profile.pretrain_minutes for r in seeds], [r["cer"] for r in seeds],
                       color=color, marker=marker, alpha=0.35, s=18)
    ax.set_xticks([f * profile.pretrain_minutes for f in (0.0, *FRACTIONS)])
    ax.set_xlabel("pretraining minutes (0: from scratch)")
    ax.set_ylabel("test CER (%)")
    ax.set_title("Test CER against pretraining (lines: mean over seeds; points: seeds)")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def compare_low_resource(current: dict, baseline: dict, tolerance_pct: float) -> list[str]:
    """Regressions against an earlier low-resource run: a mean test CER higher, or a relative CER
    reduction lower, by more than the tolerance; a check that passed there and fails now."""
    tol = tolerance_pct / 100.0
    problems = []
    now = {(r["model"], r["preset"], r["checkpoint"]): r for r in current.get("summary", [])}
    for old in baseline.get("summary", []):
        key = (old["model"], old["preset"], old["checkpoint"])
        name = " ".join(k for k in (old["model"], old["preset"], old["checkpoint"]) if k)
        new = now.get(key)
        if new is None:
            problems.append(f"{name}: in the baseline but not measured now")
            continue
        if old["cer"] is not None and (new["cer"] is None or new["cer"] > old["cer"] * (1 + tol)):
            problems.append(f"{name}: test CER rose from {fmt(old['cer'])}% to {fmt(new['cer'])}%")
        reduction = old.get("cer_reduction")
        if reduction is not None and reduction > 0 and (new.get("cer_reduction") is None
                                                        or new["cer_reduction"] < reduction * (1 - tol)):
            problems.append(f"{name}: relative CER reduction fell from {fmt(reduction)} to "
                            f"{fmt(new.get('cer_reduction'))}")
    passed = {c["check"] for c in baseline.get("checks", []) if c["passed"] is True}
    for check in current.get("checks", []):
        if check["check"] in passed and check["passed"] is False:
            problems.append(f"check '{check['check']}' passed in the baseline and fails now ({check['detail']})")
    return problems
