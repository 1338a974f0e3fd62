"""The real profile's data (``sew.bench.real``): which corpora are under DIR, their manifests, and the
unlabelled pretraining pool that never holds test audio."""

from __future__ import annotations

import json
from pathlib import Path

BUILD_HINT = ("build them with make-real-corpora DIR (Tux Paint's stamp descriptions and the Hedgewars voice packs "
              "from Debian packages; docs/benchmarks.md, 'The real profile')")


def find_corpora(root: Path, names: list[str]) -> dict[str, Path]:
    """The corpora of ``names`` present under ``root`` (a ``train`` split at least); a line for each missing one."""
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such directory; the real profile reads the corpora of make-real-corpora: "
                                f"{BUILD_HINT}")
    found = {}
    for name in names:
        if (root / name / "train").is_dir():
            found[name] = root / name
        else:
            print(f"sew bench: {name}: not in {root}, skipped ({BUILD_HINT})", flush=True)
    if not found:
        raise FileNotFoundError(f"{root}: none of {', '.join(names)} is there; {BUILD_HINT}")
    return found


def write_manifests(corpora: dict[str, Path], out: Path, workers: int, progress: bool) -> dict[str, Path]:
    """``sew data manifest`` of each corpus into ``out/NAME`` (reused when written before): decoded once,
    bad files reported, lengths and transcripts checked."""
    from sew.data.manifest import write_manifest
    from sew.data.rejects import RejectLog

    manifests = {}
    for name, source in corpora.items():
        target = out / name
        if not (target / "train.tsv").is_file():
            log = RejectLog()
            reports = write_manifest(source, target, log, workers=workers, progress=progress)
            print(f"{name}: " + "; ".join(r.line() for r in reports), flush=True)
        manifests[name] = target
    return manifests


def splits_under(root: Path, prefix: str):
    """(corpus directory, utterance) of every split named ``prefix...`` of every corpus directly under ``root``,
    corpora in name order; folders that are not corpora are passed over."""
    from sew.data.corpus import list_splits, read_corpus

    for corpus in sorted(p for p in root.iterdir() if p.is_dir()):
        try:
            splits = [s for s in list_splits(corpus) if s.startswith(prefix)]
        except ValueError:
            continue
        for split in splits:
            for utt in read_corpus(corpus, split=split):
                yield corpus, utt


def test_names(root: Path) -> set[str]:
    """File names of every test split under ``root``."""
    return {Path(utt.path).name for _, utt in splits_under(root, "test")}


def build_pool(root: Path, out: Path, *, min_seconds: float, workers: int, progress: bool) -> dict:
    """The unlabelled pretraining pool (``out/train.tsv``): each training clip under ``root`` once, none
    whose file name is in a test split; clips under ``min_seconds`` are reported and left out."""
    from sew.data.manifest import scan_corpus, write_split
    from sew.data.records import Corpus, Utterance
    from sew.data.rejects import RejectLog

    info_path = out / "pool.json"
    if info_path.is_file() and (out / "train.tsv").is_file():
        return json.loads(info_path.read_text())
    tested = test_names(root)
    seen, utterances, sources = set(), [], {}
    excluded = 0
    for corpus, utt in splits_under(root, "train"):
        name = Path(utt.path).name
        if name in tested:
            excluded += 1
        elif name not in seen:
            seen.add(name)
            sources[corpus.name] = sources.get(corpus.name, 0) + 1
            utterances.append(Utterance(id=name, path=utt.path, line=utt.line))
    log = RejectLog(warn=False)  # counted below: hundreds of clips are under the minimum
    good = scan_corpus(Corpus(utterances, "train", str(root), "pool"), log, workers=workers,
                       min_samples=int(min_seconds * 16000), require_transcripts=False, require_labels=False,
                       progress=progress)
    write_split(out, "train", good)
    log.write(out)
    info = {"clips": len(good), "minutes": round(sum(u.num_samples for u in good) / 16000 / 60, 1),
            "rejected": len(log), "rejected_reasons": log.count_by_reason(),
            "excluded_as_test": excluded, "new_clips_by_corpus": sources, "min_seconds": min_seconds,
            "test_files_in_pool": len({Path(u.path).name for u in good} & tested)}
    info_path.write_text(json.dumps(info, indent=1))
    why = ", ".join(f"{n} {reason}" for reason, n in info["rejected_reasons"].items()) or "none"
    print(f"pretraining pool: {info['clips']} clips, {info['minutes']} min; rejected: {why} (listed in "
          f"{out}/rejected.tsv); {excluded} training clips left out because a test split holds them -> "
          f"{out}/train.tsv", flush=True)
    return info
