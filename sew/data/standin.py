"""A stand-in for a small real non-English corpus: Czech eSpeak NG speech in an audiofolder.

Why: a user's quick CTC fine-tuning on a real corpus never left the blank plateau; this generator
reproduces that corpus's properties offline so the problem can be reproduced and fixed:

* about ``DEFAULT_MINUTES`` (86) minutes, about 1500 utterances; durations with a median near 3 s
  and a long tail up to ``MAX_SECONDS`` (log-normal word counts, capped);
* ``SPEAKERS``: four fixed Czech voices, each with its own pitch, rate, recording level and channel
  (room, band limits, noise: ``sew.data.realistic`` with mild per-speaker settings), unevenly
  represented (``share``);
* transcripts as real ones are written: Czech orthography with diacritics, capitalised sentence
  starts and names, commas, full stops, question and exclamation marks. With no Czech corpus at
  hand the words are a pseudo-lexicon (``build_lexicon``): common Czech function words plus
  pronounceable words built from Czech syllables, drawn with Zipfian frequencies;
* OGG Vorbis at 22050 Hz for some speakers and 44100 Hz for others (eSpeak NG's 22050 Hz output
  resampled with soxr), mono;
* an audiofolder with ``train/`` and ``test/`` only (no dev split): ``SPLIT/metadata.csv`` with
  ``file_name``, ``transcription`` and ``speaker_id``, the audio next to it.

Also ``corpus.json`` (everything above) and ``conditions/{split}.tsv`` (each utterance's channel, in
``sew.data.realistic``'s format). Deterministic for a seed whatever the number of workers: chunks
of ``CHUNK`` utterances, each in a fresh process, every utterance's noise from its own generator.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soxr

from sew.data.audio import write_ogg
from sew.data.realistic import PRELOAD, Conditions, apply_conditions, utterance_rng, write_conditions
from sew.data.synth import available_cores, run_chunks, trim_silence

VERSION = 1  # bump when the output for a given seed changes; part of the cache directory name
LANGUAGE = "cs"
DEFAULT_MINUTES = 86.0  # train + test
TEST_FRACTION = 0.1  # of the utterances
MEDIAN_WORDS = 7.5  # log-normal word counts: median (about 3 s of speech) ...
WORDS_SIGMA = 0.4  # ... and spread of the log
LONG_FRACTION = 0.015  # ... and this share of long utterances instead (read paragraphs) ...
LONG_WORDS = (25, 80)  # ... of a log-uniform word count in this range, up to the cap
MAX_SECONDS = 28.0  # estimated duration cap of one utterance
LEXICON_SIZE = 2500
ZIPF = (1.0, 2.7)  # word of rank r drawn with probability ~ 1 / (r + offset) ** exponent
LEVEL_JITTER_DB = 2.0  # each utterance's peak level: the speaker's, +- this
STREAM = 11  # the constant in every stand-in utterance's seed: [seed, STREAM, index]
CHUNK = 32  # utterances per fresh synthesizer process (fixed: it determines the output)
ESPEAK_RATE = 22050  # eSpeak NG's output sample rate


@dataclass(frozen=True)
class StandinSpeaker:
    """One speaker: a fixed voice, pitch and rate, recording set-up (rate, level, room, channel, noise)."""

    name: str
    voice: str
    pitch: int
    rate_wpm: int
    sample_rate: int
    share: float  # fraction of the utterances
    peak_db: float  # recording level (peak, dBFS), jittered by LEVEL_JITTER_DB
    rt60_s: float | None  # room (None: close-talking, no reverberation)
    drr_db: float | None
    highpass_hz: float | None
    lowpass_hz: float | None
    noise: str
    snr_db: tuple[float, float]


SPEAKERS = (
    StandinSpeaker("spk1", "cs", 42, 160, 44100, 0.38, -3.0, None, None, 60.0, None, "white", (32.0, 40.0)),
    StandinSpeaker("spk2", "cs+f2", 68, 150, 22050, 0.30, -14.0, 0.3, 8.0, 100.0, 7000.0, "pink", (22.0, 30.0)),
    StandinSpeaker("spk3", "cs+m3", 35, 175, 44100, 0.20, -24.0, None, None, 150.0, None, "hum", (24.0, 32.0)),
    StandinSpeaker("spk4", "cs+f4", 58, 140, 22050, 0.12, -8.0, 0.45, 5.0, None, 5500.0, "brown", (18.0, 26.0)),
)

# Common Czech function words (most frequent first), then pseudo-words from these syllable parts.
FUNCTION_WORDS = ("a", "je", "se", "v", "na", "to", "že", "s", "z", "do", "i", "o", "k", "ale", "jak", "tak",
                  "pro", "by", "jsem", "už", "jsou", "jen", "po", "od", "za", "co", "ten", "ta", "když", "který",
                  "byl", "bylo", "není", "také", "mezi", "před", "podle", "při", "až", "nebo", "ještě", "tady")
ONSETS = ("b c č d ď f h ch j k l m n ň p r ř s š t ť v z ž g br bl dr hl hr kl kr ml pl pr sl sm sn sp st sv "
          "šk šp št tr vl vr zd zn zv čt kř př tř dv str").split()
NUCLEI = ("a", "a", "a", "e", "e", "e", "i", "i", "o", "o", "o", "u", "u", "y", "á", "é", "ě", "í", "í", "ó",
          "ú", "ů", "ý", "ou")
CODAS = ("n", "l", "s", "k", "t", "m", "ch", "j", "r", "š", "st", "z", "v", "č")
SYLLABLES_PER_WORD = ((1, 0.2), (2, 0.4), (3, 0.28), (4, 0.12))
VOWELS = set("aáeéěiíoóuúůyý")
_SOFT = set("čřšžcjďťň")  # soft consonants: followed by i/í, never y/ý
_HARDENED = {"ď": "d", "ť": "t", "ň": "n"}  # ďe, ťi, ňí are written dě, ti, ní
_DOUBLED = re.compile(r"chch|([^aáeéěiíoóuúůyý])\1")


@dataclass(frozen=True)
class StandinItem:
    """One utterance to synthesize."""

    index: int  # seeds the utterance's channel noise
    split: str
    id: str
    speaker: StandinSpeaker
    text: str
    estimated_s: float


def syllable(rng: np.random.Generator, first: bool, last: bool) -> str:
    """One Czech-looking syllable, spelled by the main orthographic rules (ě, ů, soft consonants)."""
    onset = "" if first and rng.random() < 0.12 else ONSETS[int(rng.integers(len(ONSETS)))]
    nucleus = NUCLEI[int(rng.integers(len(NUCLEI)))]
    if nucleus == "ů" and not onset:
        nucleus = "ú"  # ů never starts a word, ú mostly does
    if nucleus == "ú" and not first:
        nucleus = "ů"
    if nucleus == "ě" and (not onset or onset[-1] not in "bpvmdtn"):
        nucleus = "e"
    if onset and onset[-1] in _SOFT and nucleus in ("y", "ý"):
        nucleus = {"y": "i", "ý": "í"}[nucleus]
    if onset and onset[-1] in _HARDENED and nucleus[0] in "eéěií":
        onset = onset[:-1] + _HARDENED[onset[-1]]
        nucleus = "ě" if nucleus == "e" else nucleus
    coda = CODAS[int(rng.integers(len(CODAS)))] if rng.random() < (0.45 if last else 0.15) else ""
    return onset + nucleus + coda


def count_syllables(word: str) -> int:
    """Vowel groups of a word ("ou" is one): what its spoken duration mostly depends on."""
    groups, previous = 0, False
    for ch in word.lower():
        vowel = ch in VOWELS
        groups += vowel and not previous
        previous = vowel
    return groups


def build_lexicon(seed: int, size: int = LEXICON_SIZE) -> list[str]:
    """``size`` distinct words, most frequent first: ``FUNCTION_WORDS``, then pseudo-words roughly
    by length (short words are frequent in every language), each of 1-4 syllables."""
    rng = np.random.default_rng([seed, STREAM, 0])
    counts, probs = zip(*SYLLABLES_PER_WORD)
    words, seen = [], set(FUNCTION_WORDS)
    for _ in range(size * 50):
        if len(words) + len(FUNCTION_WORDS) >= size:
            break
        n = counts[int(rng.choice(len(counts), p=np.array(probs) / sum(probs)))]
        word = "".join(syllable(rng, i == 0, i == n - 1) for i in range(n))
        if word not in seen and not _DOUBLED.search(word):  # "chch", "ss": not how Czech is spelled
            seen.add(word)
            words.append((count_syllables(word) + rng.normal(0, 1.0), word))
    else:
        raise RuntimeError(f"could only build {len(words)} of {size} distinct words")
    return [*FUNCTION_WORDS, *(w for _, w in sorted(words))][:size]


def zipf_probabilities(size: int) -> np.ndarray:
    """Probability of the word of each rank (Zipf-Mandelbrot, ``ZIPF``)."""
    exponent, offset = ZIPF
    weights = 1.0 / (np.arange(size) + offset) ** exponent
    return weights / weights.sum()


def make_text(rng: np.random.Generator, words: list[str]) -> str:
    """``words`` written as a transcript: sentences of 3-14 words, capitalised, with some names
    (capitalised words), commas and a full stop, question or exclamation mark each."""
    sentences, i = [], 0
    while i < len(words):
        part = list(words[i:i + int(rng.integers(3, 15))])
        i += len(part)
        for j in range(len(part)):
            if j > 0 and rng.random() < 0.04 and len(part[j]) > 2:
                part[j] = part[j].capitalize()  # a name
            if j < len(part) - 1 and rng.random() < 0.08:
                part[j] += ","
        part[0] = part[0][0].upper() + part[0][1:]
        end = rng.random()
        sentences.append(" ".join(part) + ("." if end < 0.8 else "?" if end < 0.95 else "!"))
    return " ".join(sentences)


def estimate_seconds(text: str, rate_wpm: int) -> float:
    """Trimmed duration of ``text`` spoken by eSpeak NG's Czech voices at ``rate_wpm`` (fitted on seed 0)."""
    syllables = sum(count_syllables(w) for w in text.split())
    pauses = sum(text.count(p) for p in ",.?!")
    return max((0.173 * syllables + 0.058 * len(text.split()) + 0.31 * pauses) * 175.0 / rate_wpm - 0.32, 0.4)


def plan_standin(seed: int, minutes: float = DEFAULT_MINUTES,
                 speakers: tuple[StandinSpeaker, ...] = SPEAKERS) -> list[StandinItem]:
    """Every utterance, until the estimated duration reaches ``minutes``: a speaker (each once first,
    then by ``share``), log-normal word count (capped at ``MAX_SECONDS``), Zipfian words; then a
    seeded ``TEST_FRACTION`` of them (at least 2) go to test."""
    if minutes <= 0:
        raise ValueError(f"--minutes must be positive, got {minutes}")
    rng = np.random.default_rng([seed, STREAM, 1])
    lexicon = build_lexicon(seed)
    probs = zipf_probabilities(len(lexicon))
    shares = np.array([s.share for s in speakers]) / sum(s.share for s in speakers)
    drafts, total = [], 0.0
    while total < minutes * 60 or len(drafts) < 4:
        k = len(drafts)
        speaker = speakers[k] if k < len(speakers) else speakers[int(rng.choice(len(speakers), p=shares))]
        count = max(1, int(round(rng.lognormal(math.log(MEDIAN_WORDS), WORDS_SIGMA))))
        if rng.random() < LONG_FRACTION:
            count = int(round(math.exp(rng.uniform(math.log(LONG_WORDS[0]), math.log(LONG_WORDS[1])))))
        words = [lexicon[i] for i in rng.choice(len(lexicon), size=count, p=probs)]
        text = make_text(rng, words)
        while estimate_seconds(text, speaker.rate_wpm) > MAX_SECONDS:
            words = words[:max(int(len(words) * 0.9), 1)]
            text = make_text(rng, words)
        seconds = estimate_seconds(text, speaker.rate_wpm)
        drafts.append((speaker, text, seconds))
        total += seconds
    test = set(rng.choice(len(drafts), size=max(2, round(TEST_FRACTION * len(drafts))), replace=False).tolist())
    return [StandinItem(i, "test" if i in test else "train", f"{speaker.name}_{i:05d}", speaker, text, seconds)
            for i, (speaker, text, seconds) in enumerate(drafts)]


def standin_conditions(speaker: StandinSpeaker, rng: np.random.Generator) -> Conditions:
    """One utterance's channel: the speaker's room, band limits and noise kind, an SNR in its range and
    its level jittered by ``LEVEL_JITTER_DB``; no speed change (a speaker keeps its rate)."""
    snr = float(rng.uniform(*speaker.snr_db))
    peak = min(speaker.peak_db + float(rng.uniform(-LEVEL_JITTER_DB, LEVEL_JITTER_DB)), -0.5)
    return Conditions(None, speaker.rt60_s, speaker.drr_db, speaker.highpass_hz, speaker.lowpass_hz,
                      speaker.noise, snr, peak)


def _standin_chunk(job: tuple[str, int, list[StandinItem]]) -> list[tuple[float, Conditions]]:
    """Worker (a fresh process per chunk): write each utterance's OGG; return (seconds, conditions) each."""
    from sew.data.espeak import get_synthesizer

    out_dir, seed, items = job
    synth = get_synthesizer()
    synth.reset_random(0)
    results = []
    for item in items:
        sp = item.speaker
        raw = synth.synthesize(item.text, sp.voice, sp.rate_wpm, sp.pitch).astype(np.float32) / 32768.0
        if synth.sample_rate != sp.sample_rate:
            raw = soxr.resample(raw, synth.sample_rate, sp.sample_rate)
        rng = utterance_rng(seed, item.index, STREAM)
        conditions = standin_conditions(sp, rng)
        wave = apply_conditions(trim_silence(raw, sp.sample_rate), conditions, rng, rate=sp.sample_rate)
        write_ogg(Path(out_dir) / item.split / f"{item.id}.ogg", wave, sp.sample_rate)
        results.append((len(wave) / sp.sample_rate, conditions))
    return results


def _write_metadata(path: Path, items: list[StandinItem]) -> None:
    """``SPLIT/metadata.csv``: file_name, transcription, speaker_id (quoted where a transcript has commas)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["file_name", "transcription", "speaker_id"])
    writer.writerows([f"{it.id}.ogg", it.text, it.speaker.name] for it in items)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(buffer.getvalue(), encoding="utf-8")


def synthesize_standin(out_dir: str | Path, seed: int = 0, *, minutes: float = DEFAULT_MINUTES,
                       workers: int | None = None, progress: bool = True, log=print) -> dict:
    """Generate the stand-in corpus into ``out_dir`` (see the module docstring); return its ``corpus.json``."""
    out = Path(out_dir)
    workers = workers or available_cores()
    start = time.perf_counter()
    items = plan_standin(seed, minutes)
    chunks = [items[i:i + CHUNK] for i in range(0, len(items), CHUNK)]
    results = run_chunks(_standin_chunk, [(str(out), seed, chunk) for chunk in chunks], workers, total=len(items),
                         progress=progress, desc="synthesize standin", preload=PRELOAD)
    info = {"generator": "sew.data.standin", "task": "standin", "layout": "audiofolder", "version": VERSION,
            "seed": seed, "minutes": minutes, "language": LANGUAGE, "format": "OGG Vorbis, mono",
            "sample_rates": sorted({s.sample_rate for s in SPEAKERS}),
            "speakers": {s.name: {k: v for k, v in asdict(s).items() if k != "name"} for s in SPEAKERS},
            "lexicon_size": LEXICON_SIZE, "zipf": list(ZIPF), "median_words": MEDIAN_WORDS,
            "words_sigma": WORDS_SIGMA, "max_seconds": MAX_SECONDS, "level_jitter_db": LEVEL_JITTER_DB,
            "columns": ["file_name", "transcription", "speaker_id"], "conditions": "conditions/{split}.tsv",
            "splits": {}}
    for split in ("train", "test"):
        chosen = [(it, r) for it, r in zip(items, results) if it.split == split]
        _write_metadata(out / split / "metadata.csv", [it for it, _ in chosen])
        write_conditions(out / "conditions" / f"{split}.tsv", [(it.id, c) for it, (_, c) in chosen])
        seconds = sorted(s for _, (s, _) in chosen)
        info["splits"][split] = {"utterances": len(chosen), "seconds": round(sum(seconds), 2),
                                 "median_seconds": round(float(np.median(seconds)), 2),
                                 "max_seconds": round(seconds[-1], 2)}
    (out / "corpus.json").write_text(json.dumps(info, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    elapsed = time.perf_counter() - start
    if log is not None:
        audio_s = sum(s for s, _ in results)
        log(f"synthesized the standin corpus: {len(items)} utterances of {len(SPEAKERS)} speakers "
            f"({audio_s / 60:.1f} min) in {elapsed:.1f} s: {audio_s / elapsed:.0f}x real time "
            f"with {min(workers, len(chunks))} worker(s)")
    return info
