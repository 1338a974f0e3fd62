"""Tables and result files for the benchmarks."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from sew.files import write_json

SPEED_COLUMNS = [
    ("model", "model"), ("implementation", "impl"), ("params_m", "params (M)"),
    ("gmacs_per_audio_s", "GMAC / audio s"), ("ms_per_utterance", "ms / utt"), ("audio_s_per_s", "audio s / s"),
    ("rtf", "RTF"), ("achieved_gflops", "GFLOP/s"), ("peak_fraction", "of peak"), ("peak_memory_mb", "peak MB"),
    ("speedup_vs_baseline", "speed vs base"), ("sew_speedup_vs_transformers", "sew vs HF"),
    ("compiled_speedup_vs_eager", "compiled vs eager"), ("onnx_speedup_vs_eager", "onnx vs eager"),
]


def markdown_table(rows: list[dict], columns: list[tuple[str, str]]) -> str:
    """A Markdown table of ``rows`` with the given (key, header) columns; missing values are blank."""
    present = [(k, h) for k, h in columns if any(k in r for r in rows)]
    lines = ["| " + " | ".join(h for _, h in present) + " |", "|" + "---|" * len(present)]
    for r in rows:
        cells = []
        for k, _ in present:
            v = r.get(k, "")
            v = "n/a" if v is None else v
            cells.append(f"{v:.3g}" if isinstance(v, float) and k == "rtf" else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


MERGED_COLUMNS = [
    ("model", "model"), ("family", "family"), ("params_m", "params (M)"), ("gmacs_per_audio_s", "GMAC / audio s"),
    ("ms_per_utterance", "ms / utt"), ("audio_s_per_s", "audio s / s"), ("speedup_vs_baseline", "speed vs base"),
    ("hf_ms_per_utterance", "HF ms / utt"), ("sew_speedup_vs_transformers", "sew vs HF"),
    ("updates", "updates"), ("wer", "WER %"), ("wer_std", "WER sd"), ("cer", "CER %"), ("cer_std", "CER sd"),
    ("bf16", "bf16"), ("wer_bf16", "WER bf16 %"), ("cer_bf16", "CER bf16 %"), ("wer_int8", "WER int8 %"), ("cer_int8", "CER int8 %"), ("wer_onnx", "WER onnx %"), ("cer_onnx", "CER onnx %"),
]


def merged_table(speed: list[dict], wer: list[dict]) -> str:
    """One row per model: our speed, the transformers twin's, and the error rates (a model scored but
    not timed, its timing having failed, keeps its row)."""
    rows = []
    timed = {r["model"] for r in speed if r["implementation"] == "sew"}
    speed = speed + [{"model": w["model"], "implementation": "sew"} for w in wer if w["model"] not in timed]
    for r in speed:
        if r["implementation"] != "sew":
            continue
        row = dict(r)
        twin = next((t for t in speed if t["model"] == r["model"] and t["implementation"] == "transformers"), None)
        if twin:
            row["hf_ms_per_utterance"] = twin["ms_per_utterance"]
            row["sew_speedup_vs_transformers"] = twin["sew_speedup_vs_transformers"]
        scored = next((w for w in wer if w["model"] == r["model"]), None)
        if scored:
            # updates, WER / CER with their spread, and the backend variants (wer_int8, ...)
            row.update({k: v for k, v in scored.items()
                        if k in ("updates", "bf16") or (k.startswith(("wer", "cer")) and not k.endswith("_runs"))})
        rows.append(row)
    return markdown_table(rows, MERGED_COLUMNS)


def results_dir(root: str | Path = "results", resume: str | Path | None = None) -> Path:
    """A fresh ``results/<timestamp>/`` directory (``-2``, ``-3`` ... added when runs start in the same second),
    or ``resume``, an existing one to continue."""
    if resume is not None:
        if not Path(resume).is_dir():
            raise ValueError(f"--resume {resume}: no such results directory")
        return Path(resume)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    Path(root).mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        path = Path(root) / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            path.mkdir()  # atomic: two runs never get one directory
            return path
        except FileExistsError:
            continue
    raise ValueError(f"{root}: 999 results directories for {stamp} already")


class PhaseStore:
    """What a benchmark has finished, phase by phase, in ``DIR/partial.json`` (rewritten atomically after
    each phase): a run killed or interrupted keeps every finished model, and ``--resume DIR`` runs only what
    is left. ``settings`` are the run's options; a resume with other settings is refused, naming them. The
    records a finished phase added to ``failures`` (a ``FailureLog``: a model that failed inside a phase
    that finished) are kept with it and come back on resume."""

    FILE = "partial.json"

    def __init__(self, directory: Path, settings: dict, failures=None) -> None:
        self.path, self.settings = Path(directory) / self.FILE, json.loads(json.dumps(settings, default=str))
        self.failures = failures
        self.phases: dict = {}
        self.phase_failures: dict = {}
        if self.path.is_file():
            saved = json.loads(self.path.read_text())
            changed = [k for k in self.settings.keys() | saved["settings"].keys()
                       if self.settings.get(k) != saved["settings"].get(k)]
            if changed:
                raise ValueError(f"--resume {directory}: made with other settings ({', '.join(sorted(changed))}); "
                                 "rerun with the options it was made with, or drop --resume")
            self.phases, self.phase_failures = saved["phases"], saved.get("failures", {})
            print(f"resuming {directory}: {len(self.phases)} finished phase(s) kept", flush=True)

    def run(self, key: str, compute):
        """The stored result of phase ``key``, or ``compute()``'s, stored when it is not None (a failed
        phase is tried again by the next resume)."""
        if key in self.phases:
            if self.failures is not None:
                self.failures.records.extend(self.phase_failures.get(key, []))
            return self.phases[key]
        before = len(self.failures.records) if self.failures is not None else 0
        value = compute()
        if value is not None:
            self.phases[key] = value
            if self.failures is not None and len(self.failures.records) > before:
                self.phase_failures[key] = self.failures.records[before:]
            write_json(self.path, {"settings": self.settings, "phases": self.phases, "failures": self.phase_failures})
        return value


def machine_markdown(m: dict) -> str:
    """``machine_info``'s record as the short list that opens a results.md: what a reader checks first."""
    caps = m.get("cpu_capabilities") or {}
    engines = [name for name, on in (("oneDNN", caps.get("onednn")), ("int8", caps.get("int8"))) if on]
    if caps.get("bf16"):
        engines.append(f"bf16 {caps['bf16']}")
    cpu = f"{m['cpu']}, {m.get('cpu_count', '?')} cores, {caps.get('arch', '')} {m.get('cpu_isa', '?')} kernels".strip()
    device = m["device"] + (f" ({m['gpu']})" if m.get("gpu") else "")
    software = ", ".join(f"{name} {m[key]}" for name, key in (("torch", "torch"), ("transformers", "transformers"),
                                                                ("Python", "python")) if m.get(key))
    peak = f"; matmul peak {m['matmul_peak_gflops']:.0f} GFLOP/s" if m.get("matmul_peak_gflops") else ""
    lines = [f"- CPU: {cpu}" + (f" ({', '.join(engines)})" if engines else ""),
             f"- threads: {m['threads']}; device: {device}{peak}",
             f"- software: {software}; memory allocator: {m.get('malloc', 'default')}",
             f"- date: {time.strftime('%Y-%m-%d')}; commit: {code_version()}"]
    return "\n".join(lines)


def write_results(directory: Path, data: dict, title: str, body: str) -> None:
    """results.json, and results.md: the title, the machine (``data["machine"]``) as a list, then ``body``."""
    write_json(directory / "results.json", data)
    machine = f"{machine_markdown(data['machine'])}\n\n" if data.get("machine") else ""
    (directory / "results.md").write_text(f"# {title}\n\n{machine}{body}\n")


def load_results(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())


def code_version() -> str:
    """The commit of the code that ran (``+changes`` when the tree differs from it), or ``unknown``."""
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+changes" if dirty else "")


def update_results_page(page: str | Path, results: dict, command: str) -> Path:
    """Write this run's table with its command, machine, date and commit into ``page`` (Markdown),
    between markers of its profile, replacing the previous run of that profile; other text stays."""
    page = Path(page)
    name = results.get("profile_name", "speed")
    m = results["machine"]
    where = f"{m['cpu']} ({m.get('cpu_isa', '?')}), {m['threads']} threads" + (f", {m['gpu']}" if m.get("gpu") else "")
    begin, end = f"<!-- sew bench {name}: begin -->", f"<!-- sew bench {name}: end -->"
    block = (f"{begin}\n### `{name}` profile\n\n`{command}` on {where}; torch {m['torch']}; "
             f"{time.strftime('%Y-%m-%d')}; commit {code_version()}\n\n{results['table']}\n{end}")
    text = page.read_text() if page.is_file() else "# Results\n"
    if begin in text and end in text:
        text = text[:text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(text)
    return page
