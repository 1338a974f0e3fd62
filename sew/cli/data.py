"""``sew data``: write canonical manifests, generate the built-in corpus and tasks, describe a corpus."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from sew.cli.options import add_no_progress, add_strict


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("data", help="prepare speech corpora (manifests, the built-in corpus and tasks)",
                                   description="Prepare speech corpora: scan and convert, synthesize, describe.")
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION")
    parser.set_defaults(func=lambda args: parser.print_help() or 2)

    m = sub.add_parser("manifest", help="scan a corpus and write fairseq .tsv/.wrd/.ltr/.label manifests",
                       description="Decode every file of SOURCE once, skip and report bad items, and write the "
                                   "canonical form (SPLIT.tsv with 16 kHz sample counts, SPLIT.wrd, SPLIT.ltr, "
                                   "SPLIT.label for class labels, vocab.json from train, rejected.tsv) into --out.")
    m.add_argument("source", nargs="?", default=None,
                   help="fairseq .tsv or directory of them, LibriSpeech tree, audiofolder, Speech Commands tree, "
                        "or datasets save_to_disk directory (default: the built-in corpus)")
    m.add_argument("--out", required=True, help="output directory for the manifests and rejected.tsv")
    m.add_argument("--split", action="append", default=None,
                   help="split to convert; repeat for several (default: every split found)")
    m.add_argument("--workers", type=int, default=1, help="processes decoding audio (default: 1)")
    add_strict(m)
    m.add_argument("--min-duration", type=float, default=0.0,
                   help="reject utterances shorter than this many seconds (default: 0, i.e. only those shorter "
                        "than the 400-sample receptive field)")
    m.add_argument("--max-duration", type=float, default=None,
                   help="reject utterances longer than this many seconds (default: no limit)")
    m.add_argument("--vocab", default=None,
                   help="vocab.json (or its directory): reject transcripts with other characters "
                        "(default: none; a vocabulary is built from the train split)")
    m.add_argument("--copy-audio", action="store_true",
                   help="rewrite every good file as 16 kHz mono FLAC under OUT/audio (default: reference the "
                        "originals; embedded audio is always copied)")
    m.add_argument("--trim-silence", type=float, default=None, metavar="DB",
                   help="cut each file's leading and trailing audio quieter than DB decibels under its loudest "
                        "25 ms frame (0.1 s kept on each side; 25 is a measured choice) and write the result as with "
                        "--copy-audio: recordings that open and close on seconds of room noise keep CTC "
                        "fine-tuning from scratch on the blank plateau (default: off)")
    add_no_progress(m)
    m.set_defaults(func=run_manifest)

    s = sub.add_parser("synth", help="generate the built-in synthetic speech corpus, a classification task or "
                                     "the stand-in corpus",
                       description="Synthesize multi-speaker English speech with eSpeak NG into train/dev/test "
                                   "16 kHz FLAC plus manifests (the ASR corpus; --realistic adds rooms, channels, "
                                   "noise and levels), a built-in classification task: kws (keyword spotting, "
                                   "Speech Commands layout) or speaker-id (speaker identification, manifests with "
                                   ".label files), or standin (a stand-in for a small real Czech corpus: an "
                                   "audiofolder of OGG files, train and test only). Same seed, same bytes.")
    s.add_argument("--task", default="asr", choices=["asr", "kws", "speaker-id", "standin"],
                   help="what to generate: the ASR corpus, the keyword-spotting task, the speaker-identification "
                        "task or the stand-in Czech ASR corpus (default: asr)")
    s.add_argument("--out", default=None,
                   help="output directory (default: the cache directory used by every command, $SEW_CACHE or ~/.cache/sew)")
    s.add_argument("--minutes", type=float, default=None,
                   help="asr: minutes of train audio (default: 40); standin: minutes in all (default: 86)")
    s.add_argument("--realistic", action="store_true",
                   help="asr only: degrade every utterance (speed, room, band limits, noise, level; "
                        "conditions/SPLIT.tsv lists them) and widen eSpeak's rate and pitch (default: off, clean)")
    s.add_argument("--seed", type=int, default=0,
                   help="random seed for sentences, words, voices, rate, pitch and noise (default: 0)")
    s.add_argument("--eval-minutes", type=float, default=None,
                   help="asr only: minutes of dev and of test audio each (default: 7.5%% of --minutes)")
    s.add_argument("--workers", type=int, default=None, help="synthesis processes (default: all available cores)")
    add_no_progress(s)
    s.set_defaults(func=run_synth)

    i = sub.add_parser("info", help="list the splits of a corpus with their sizes",
                       description="Describe a corpus without decoding audio: format, splits, utterances, "
                                   "duration (when the manifest has lengths) and transcripts.")
    i.add_argument("source", nargs="?", default=None, help="any supported corpus (default: the built-in corpus)")
    i.set_defaults(func=run_info)


def _source(source: str | None) -> str:
    if source is not None:
        return source
    from sew.data.synth import default_corpus

    return str(default_corpus())


def run_manifest(args: argparse.Namespace) -> int:
    from sew.data.manifest import RECEPTIVE_FIELD, write_manifest
    from sew.data.rejects import RejectLog
    from sew.data.silence import SILENCE_FILE
    from sew.data.text import Vocabulary

    if args.workers < 1:
        raise ValueError(f"--workers must be at least 1, got {args.workers}")
    if args.trim_silence is not None and not args.trim_silence > 0:
        raise ValueError(f"--trim-silence: decibels under the loudest frame, a positive number such as 25; "
                         f"got {args.trim_silence:g}")
    source = _source(args.source)
    log = RejectLog(strict=args.strict)
    vocab = Vocabulary.load(args.vocab) if args.vocab else None
    max_samples = int(args.max_duration * 16000) if args.max_duration is not None else None
    reports = write_manifest(source, args.out, log, splits=args.split, workers=args.workers,
                             min_samples=max(int(args.min_duration * 16000), RECEPTIVE_FIELD),
                             max_samples=max_samples, vocab=vocab, copy_audio=args.copy_audio,
                             trim_db=args.trim_silence,
                             progress=not args.no_progress)
    for report in reports:
        print(report.line())
    for report in reports:
        if report.silence is not None and report.silence.files:
            print(report.silence.line(report.split))
    print(f"{log.summary()}; manifests, {SILENCE_FILE} and rejected.tsv in {args.out}")
    return 0


def run_synth(args: argparse.Namespace) -> int:
    from sew.data.synth import DEFAULT_MINUTES, default_corpus, synthesize_corpus

    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be at least 1, got {args.workers}")
    if args.task != "asr":
        return _run_task(args)
    if args.minutes is None:
        args.minutes = DEFAULT_MINUTES
    if args.out is None:
        if args.eval_minutes is not None:
            raise ValueError("--eval-minutes changes the corpus: give --out too")
        path = default_corpus(args.minutes, args.seed, progress=not args.no_progress, realistic=args.realistic)
        print(f"built-in {'realistic ' if args.realistic else ''}corpus: {path}")
        return 0
    info = synthesize_corpus(args.out, args.minutes, args.seed, workers=args.workers,
                             eval_minutes=args.eval_minutes, progress=not args.no_progress,
                             realistic=args.realistic)
    for split, s in info["splits"].items():
        print(f"{split}: {s['utterances']} utterances ({s['seconds'] / 60:.1f} min)")
    print(f"corpus written to {os.path.abspath(args.out)}")
    return 0


def _run_task(args: argparse.Namespace) -> int:
    from sew.data.corpus import list_splits, read_corpus
    from sew.data.tasks import SIZED, default_task, synthesize_task

    if args.realistic:
        why = "has its own per-speaker channels already" if args.task == "standin" else "is clean speech only"
        raise ValueError(f"--realistic degrades the ASR corpus only; the {args.task} task {why} "
                         "(drop --realistic, or --task)")
    if args.eval_minutes is not None and args.task in SIZED:
        raise ValueError(f"--eval-minutes sizes the ASR corpus's dev and test only; the {args.task} task is "
                         "sized by --minutes alone (leave --eval-minutes out)")
    for option, value in (("--minutes", args.minutes), ("--eval-minutes", args.eval_minutes)):
        if value is not None and args.task not in SIZED:
            raise ValueError(f"{option} sizes the ASR corpus only; the {args.task} task has fixed sizes "
                             "(leave it out, or drop --task)")
    if args.out is None:
        path = default_task(args.task, args.seed, progress=not args.no_progress, workers=args.workers,
                            minutes=args.minutes)
        print(f"built-in {args.task} task: {path}")
        return 0
    synthesize_task(args.task, args.out, args.seed, workers=args.workers, progress=not args.no_progress,
                    minutes=args.minutes)
    for split in list_splits(args.out):
        corpus = read_corpus(args.out, split)
        kind = f"{len(corpus.labels())} classes" if corpus.has_labels else \
            f"{sum(1 for u in corpus if u.transcript)} transcribed"
        print(f"{split}: {len(corpus)} utterances, {kind}")
    print(f"{args.task} task written to {os.path.abspath(args.out)}")
    return 0


def run_info(args: argparse.Namespace) -> int:
    from sew.data.corpus import detect_format, list_splits, read_corpus
    from sew.data.rejects import RejectLog

    source = _source(args.source)
    print(f"{source}: {detect_format(source)}")
    for split in list_splits(source):
        log = RejectLog(warn=False)
        corpus = read_corpus(source, split, log)
        duration = f"{corpus.total_seconds() / 60:.1f} min" if corpus.has_lengths else "lengths unknown (run `sew data manifest`)"
        transcribed = sum(1 for u in corpus if u.transcript)
        bad = f", {len(log)} malformed entries" if len(log) else ""
        labels = f", {sum(1 for u in corpus if u.label)} labelled ({len(corpus.labels())} classes)" \
            if corpus.has_labels else ""
        print(f"  {split}: {len(corpus)} utterances, {duration}, {transcribed} transcribed{labels}{bad}")
    if Path(source, "vocab.json").is_file():
        print(f"  vocab.json: {len(__import__('json').loads(Path(source, 'vocab.json').read_text()))} tokens")
    return 0
