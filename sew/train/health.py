"""The health monitor: says once, in one plain line, when a training run is failing, and what to try.

The failures users of wav2vec 2.0 pretraining report most are silent: a contrastive loss stuck at
the chance level ln(1 + K), a collapsed codebook, a trivial solution (accuracy 1, loss 0), a
collapsed representation, divergence; CTC fine-tuning's own is the blank plateau (every
hypothesis empty, the loss flat). ``HealthMonitor`` reads the same ``train`` and ``valid`` records
the trainer writes to ``log.jsonl`` (already all-reduced over processes), so a live run and
``sew pretrain --check RUN`` (a replay of the log) reach the same findings, and a resumed run
rebuilds its monitor by replaying the log up to its checkpoint.

A symptom that clears, well past its threshold (hysteresis, so a statistic near the line does not
flap), is withdrawn with a line of its own ("recovered", the finding keeps ``recovered``): a run
dips early and learns after, and a line that is never taken back would mislead. Divergence and a
trivial solution are never withdrawn.

Windows: "the last 50 updates" are the train records logged within the last 50 updates (each is
the mean over ``log_every`` updates), or the last record when ``log_every`` is larger.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Iterable

WINDOW = 50  # updates a windowed mean covers
NOT_LEARNING_AFTER = 300  # updates (or the warm-up, if longer) before "not learning" can be said
COLLAPSE_AFTER = 100  # updates (or the warm-up) before codebook / representation collapse can be said
PLATEAU_AFTER = 300


@dataclass
class HealthThresholds:
    """Where each symptom starts; the defaults are the documented ones (docs/pretraining.md)."""

    chance_ratio: float = 0.98  # not learning: windowed loss >= this x ln(1 + K_eff)
    prob_perplexity_share: float = 0.10  # codebook collapse: probability perplexity < this x G x V
    code_perplexity_per_group: float = 2.0  # codebook collapse: code perplexity <= this x G
    trivial_accuracy: float = 0.98  # trivial solution: accuracy >= this ...
    trivial_loss_ratio: float = 0.05  # ... with the loss below this x the chance level
    time_share: float = 0.2  # representation collapse: time-varying share below this (random init ~0.8)
    divergence_ratio: float = 1.5  # divergence: windowed loss > this x its running minimum ...
    divergence_margin: float = 0.5  # ... and more than this above it (nats per target)
    gnorm_spike: float = 10.0  # divergence: a logged gradient norm > this x the median of the last 20
    plateau_flatness: float = 0.05  # blank plateau: loss changed by less than this share over 100 updates ...
    plateau_empty: float = 0.95  # ... with at least this share of greedy hypotheses empty
    # Recovery (a finding withdrawn): not learning below this x chance; collapses at this x their
    # thresholds (time-varying share, perplexities); the blank plateau under this share of empty hypotheses.
    recovered_chance_ratio: float = 0.95
    recovery_factor: float = 2.0
    recovered_empty: float = 0.5


@dataclass
class Finding:
    """One symptom, found at ``update``: the line printed and logged, and the numbers behind it."""

    symptom: str
    update: int
    message: str
    values: dict = field(default_factory=dict)
    recovered: int | None = None  # the update at which the symptom cleared (None: still there)
    recovery: str = ""  # the line that said so

    def to_dict(self) -> dict:
        return asdict(self)


class HealthMonitor:
    """Watches one run's records; ``observe(record)`` returns the findings new at that record.

    ``kind``: ``"pretrain"`` (contrastive or fixed-target pretraining: the records carry
    ``contrastive``, ``chance``, ``accuracy``, perplexities and ``time_share``) or ``"ctc"``
    (fine-tuning: ``loss`` and ``empty``, the share of utterances whose greedy path is all blank).
    ``codebook_size`` (G x V) and ``groups`` enable the codebook checks of the contrastive quantiser.
    ``task_change``: the update at which the task gets harder on purpose (the pretraining masks'
    switch from single frames to spans, fine-tuning's masks starting); the loss's rise there is not
    divergence, and its running minimum starts again once the windows hold only the new task.
    """

    def __init__(self, kind: str, *, warmup_updates: int = 0, codebook_size: int | None = None, groups: int = 1,
                 thresholds: HealthThresholds | None = None, task_change: int = 0) -> None:
        if kind not in ("pretrain", "ctc"):
            raise ValueError(f"health monitor kind must be 'pretrain' or 'ctc', got {kind!r}")
        self.kind, self.warmup = kind, int(warmup_updates or 0)
        self.codebook_size, self.groups = codebook_size, max(int(groups), 1)
        self.t = thresholds or HealthThresholds()
        self.train: list[dict] = []
        self.valid: list[dict] = []
        self.findings: list[Finding] = []
        self.min_loss: float | None = None
        self.skipped = 0
        self.task_change = int(task_change or 0)

    # -- input ------------------------------------------------------------------------------------
    def observe(self, record: dict) -> list[Finding]:
        """Take one ``log.jsonl`` record (``kind`` train, valid or event); the findings new at it."""
        kind = record.get("kind")
        if kind == "train":
            self.train.append(record)
            self.train = self.train[-200:]  # enough for every window and the gradient-norm median
            checks = self._pretrain_checks if self.kind == "pretrain" else self._ctc_checks
            found = [f for f in checks(record) + self._divergence(record) if f is not None]
        elif kind == "valid":
            self.valid.append(record)
            found = [self._plateau(record)] if self.kind == "ctc" else []
            found = [f for f in found if f is not None]
        else:
            return []
        new = [f for f in found if not self.said(f.symptom) and not self._just_cleared(f.symptom, f.update)]
        self.findings += new
        return new + self._recoveries()

    def _just_cleared(self, symptom: str, update: int) -> bool:
        """Hysteresis in time: a symptom withdrawn less than a window ago is not said again yet, so a
        statistic hovering at a threshold gives one episode, not one every logged update."""
        return any(f.symptom == symptom and f.recovered is not None and update - f.recovered < WINDOW
                   for f in self.findings)

    def replay(self, records: Iterable[dict]) -> list[Finding]:
        """Observe every record in order (``sew pretrain --check``, or rebuilding after a resume)."""
        return [f for r in records for f in self.observe(r)]

    def said(self, symptom: str) -> bool:
        """A finding of ``symptom`` stands (said and not withdrawn): it is not said again."""
        return any(f.symptom == symptom and f.recovered is None for f in self.findings)

    @property
    def healthy(self) -> bool:
        return all(f.recovered is not None for f in self.findings)

    def _recoveries(self) -> list[Finding]:
        """The standing findings whose statistic is now well clear of their threshold, marked recovered."""
        out = []
        for f in self.findings:
            # Never withdrawn at the update it was said: it must clear on what came after it.
            later = bool(self.train) and self.train[-1]["update"] > f.update
            now = self._cleared(f) if f.recovered is None and later else None
            if now is not None:
                f.recovered = update = self.train[-1]["update"]
                f.recovery = f"recovered from {f.symptom} (said at update {f.update}): {now} at update {update}"
                out.append(f)
        return out

    def _cleared(self, finding: Finding) -> str | None:
        """What shows ``finding``'s symptom is gone, over the last window (None: it is not)."""
        t, symptom = self.t, finding.symptom
        if symptom == "not-learning":
            loss, chance = self._window("contrastive"), self._window("chance")
            if loss is not None and chance and loss < t.recovered_chance_ratio * chance:
                return f"the mean loss is {loss:.3f}, {loss / chance:.1%} of the chance level {chance:.3f}"
        elif symptom == "representation-collapse":
            share = self._window("time_share")
            if share is not None and share >= t.recovery_factor * t.time_share:
                return f"{share:.1%} of the context output varies over time"
        elif symptom == "codebook-collapse":
            code = self._window("code_perplexity")
            prob = self._window("prob_perplexity") if self.codebook_size else None
            if ((code is not None or prob is not None)
                    and (code is None or code > t.recovery_factor * t.code_perplexity_per_group * self.groups)
                    and (prob is None or prob >= t.recovery_factor * t.prob_perplexity_share * self.codebook_size)):
                return ", ".join(f"{name} perplexity {v:.1f}" for name, v in (("probability", prob), ("code", code))
                                 if v is not None)
        elif symptom == "blank-plateau":
            # Cleared on what said it: a later dev validation, or the training batches' window. (Dev said
            # empty and the training batches not: mixing the two said and withdrew it at every record.)
            if finding.values.get("where") == "on dev":
                later = [v for v in self.valid if v["update"] > finding.update and _number(v.get("empty"))]
                empty = later[-1]["empty"] if later else None
            else:
                empty = self._window("empty")
            if empty is not None and empty < t.recovered_empty:
                return f"{empty:.0%} of greedy hypotheses are empty"
        return None

    # -- windows --------------------------------------------------------------------------------
    def _window(self, key: str, end: int | None = None, span: int = WINDOW) -> float | None:
        """Mean of ``key`` over the train records logged in the ``span`` updates up to ``end``."""
        end = self.train[-1]["update"] if end is None else end
        rows = [r[key] for r in self.train if end - span < r["update"] <= end and _number(r.get(key))]
        if not rows:  # log_every longer than the span: the last record at or before ``end``
            rows = [r[key] for r in self.train if r["update"] <= end and _number(r.get(key))][-1:]
        return sum(rows) / len(rows) if rows else None

    # -- pretraining ------------------------------------------------------------------------------
    def _pretrain_checks(self, record: dict) -> list[Finding | None]:
        return [self._not_learning(record), self._codebook(record), self._trivial(record),
                self._representation(record)]

    def _not_learning(self, record: dict) -> Finding | None:
        update, t = record["update"], self.t
        if update < max(self.warmup, NOT_LEARNING_AFTER):
            return None
        loss, chance = self._window("contrastive"), self._window("chance")
        if loss is None or not chance:
            return None
        if loss >= t.chance_ratio * chance:
            level = (f"ln(1 + K), K = {math.exp(chance) - 1:.0f} usable negatives" if self.codebook_size
                     else "ln of the target codebook's entries")
            return Finding("not-learning", update,
                           f"not learning: the mean loss of the last {WINDOW} updates is {loss:.3f}, "
                           f"{loss / chance:.1%} of the chance level {chance:.3f} ({level}) after {update} "
                           f"updates; try a lower learning rate or a "
                           f"longer warm-up, shorter mask spans (objective.mask_length), or the fixed-target "
                           f"objective (objective.kind=bestrq)",
                           {"loss": loss, "chance": chance})
        return None

    def _codebook(self, record: dict) -> Finding | None:
        update, t = record["update"], self.t
        if update < max(self.warmup, COLLAPSE_AFTER):
            return None
        code = self._window("code_perplexity")
        prob = self._window("prob_perplexity") if self.codebook_size else None
        low_prob = prob is not None and prob < t.prob_perplexity_share * self.codebook_size
        low_code = code is not None and code <= t.code_perplexity_per_group * self.groups
        if not (low_prob or low_code):
            return None
        size = f" of {self.codebook_size} entries" if self.codebook_size else ""
        numbers = ", ".join(s for s in (f"probability perplexity {prob:.1f}" if prob is not None else "",
                                        f"code perplexity {code:.1f}" if code is not None else "") if s)
        return Finding("codebook-collapse", update,
                       f"codebook collapse: {numbers}{size} ({self.groups} group(s)) over the last {WINDOW} "
                       f"updates at update {update}; the targets use a handful of codes. Try a larger "
                       f"objective.diversity_weight, normalised input, a lower learning rate, or the fixed-target "
                       f"objective (objective.kind=bestrq)",
                       {"prob_perplexity": prob, "code_perplexity": code, "codebook_size": self.codebook_size})

    def _trivial(self, record: dict) -> Finding | None:
        update, t = record["update"], self.t
        accuracy, loss, chance = self._window("accuracy"), self._window("contrastive"), self._window("chance")
        if accuracy is None or loss is None or chance is None or accuracy < t.trivial_accuracy:
            return None
        if chance < t.trivial_loss_ratio * math.log(2):  # (almost) no usable negative is left
            why = ("almost every negative equals its target (chance level ln(1 + K) is near 0), so there is "
                   "nothing to tell apart: the codebook collapsed; raise objective.diversity_weight or lower the "
                   "learning rate")
        elif loss < t.trivial_loss_ratio * chance:
            why = ("the masked frames' targets are visible to the context network (check that the time masks "
                   "reach the context input: objective.mask_prob, mask_length) and nothing useful is learned")
        else:
            return None
        return Finding("trivial-solution", update,
                       f"trivial solution: accuracy {accuracy:.3f} with loss {loss:.3f} (chance {chance:.2f}) over "
                       f"the last {WINDOW} updates at update {update}; {why}",
                       {"accuracy": accuracy, "loss": loss, "chance": chance})

    def _representation(self, record: dict) -> Finding | None:
        update = record["update"]
        if update < max(self.warmup, COLLAPSE_AFTER):
            return None
        share = self._window("time_share")
        if share is not None and share < self.t.time_share:
            return Finding("representation-collapse", update,
                           f"representation collapse: only {share:.1%} of the context output varies over time "
                           f"(a random initialisation has about 80%) over the last {WINDOW} updates at update "
                           f"{update}; every frame maps to nearly the same vector. Try a lower learning rate or "
                           f"more warm-up; with kind bestrq, objective.feature_penalty_weight 0 and shorter masks "
                           f"(objective.mask_length; docs/pretraining.md, BEST-RQ)",
                           {"time_share": share})
        return None

    # -- fine-tuning ------------------------------------------------------------------------------
    def _ctc_checks(self, record: dict) -> list[Finding | None]:
        return [self._plateau(None)]

    def _plateau(self, valid: dict | None) -> Finding | None:
        """Stuck on the blank plateau: the train loss flat over 100 updates and the greedy hypotheses
        empty (on dev when it was validated, else on the training batches)."""
        if not self.train:
            return None
        update, t = self.train[-1]["update"], self.t
        if update < max(self.warmup, PLATEAU_AFTER) or update < 2 * WINDOW:
            return None
        now, before = self._window("loss"), self._window("loss", end=update - WINDOW)
        if now is None or before is None or abs(before - now) > t.plateau_flatness * max(abs(before), 1e-9):
            return None
        if valid is None and self.valid and _number(self.valid[-1].get("empty")):
            valid = self.valid[-1]
        if valid is not None and _number(valid.get("empty")):
            empty, where = valid["empty"], "on dev"
        else:
            empty, where = self._window("empty"), "on training batches"
        if empty is None or empty < t.plateau_empty:
            return None
        return Finding("blank-plateau", update,
                       f"stuck on the CTC blank plateau: train loss {now:.3f} over the last {WINDOW} updates "
                       f"against {before:.3f} the {WINDOW} before, {empty:.0%} of greedy hypotheses empty {where} "
                       f"after {update} updates; the model predicts only blanks. Check the recordings for seconds "
                       f"of silence or room noise before and after the speech (sew data manifest CORPUS --out DIR "
                       f"--trim-silence 25 cuts them) and that the transcripts match the audio; a larger batch "
                       f"(--set train.max_tokens) helps less; docs/results.md, the blank plateau reproduced",
                       {"loss": now, "loss_before": before, "empty": empty, "where": where})

    # -- both -------------------------------------------------------------------------------------
    def _divergence(self, record: dict) -> list[Finding | None]:
        update, t = record["update"], self.t
        found: list[Finding | None] = []
        skipped = int(record.get("skipped") or 0)
        if skipped > self.skipped:
            found.append(Finding("divergence", update,
                                 f"divergence: {skipped} update(s) skipped for a non-finite loss or gradient by "
                                 f"update {update}; lower the learning rate, enable train.clip_norm, or use "
                                 f"mixed_precision bf16 or no instead of fp16",
                                 {"skipped": skipped}))
        self.skipped = skipped
        key = "contrastive" if self.kind == "pretrain" else "loss"
        loss = self._window(key)
        if self.task_change and update - WINDOW < self.task_change <= update:  # windows that mix both tasks
            self.min_loss, loss = None, None
        if loss is not None and math.isfinite(loss):
            if (update >= max(self.warmup, WINDOW) and self.min_loss is not None
                    and loss > t.divergence_ratio * self.min_loss and loss > self.min_loss + t.divergence_margin):
                found.append(Finding("divergence", update,
                                     f"divergence: the mean loss of the last {WINDOW} updates is {loss:.3f}, up from "
                                     f"its minimum {self.min_loss:.3f}, at update {update}; lower the learning rate "
                                     f"or enable train.clip_norm, and resume from a checkpoint before the rise",
                                     {"loss": loss, "min_loss": self.min_loss}))
            if len(self.train) * self._log_every() >= WINDOW:  # minimum over full windows only
                self.min_loss = loss if self.min_loss is None else min(self.min_loss, loss)
        gnorm = record.get("gnorm")
        history = [r["gnorm"] for r in self.train[-21:-1] if _number(r.get("gnorm"))]
        if _number(gnorm) and len(history) >= 5:
            median = sorted(history)[len(history) // 2]
            if median > 0 and gnorm > t.gnorm_spike * median:
                found.append(Finding("divergence", update,
                                     f"divergence: gradient norm {gnorm:.3g} at update {update}, {gnorm / median:.0f}x "
                                     f"the median {median:.3g} of the last {len(history)} logs; lower the learning "
                                     f"rate or enable train.clip_norm",
                                     {"gnorm": gnorm, "median_gnorm": median}))
        return found

    def _log_every(self) -> int:
        if len(self.train) < 2:
            return self.train[0]["update"] if self.train else 1
        return max(self.train[-1]["update"] - self.train[-2]["update"], 1)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def summary_line(findings: list[Finding]) -> str:
    """The run's last line on health: ``health: no problem found`` or each symptom and where."""
    if not findings:
        return "health: no problem found"
    said = "; ".join(f"{f.symptom} at update {f.update}" + (f", recovered at update {f.recovered}"
                                                            if f.recovered is not None else "") for f in findings)
    return "health: " + ("no problem left (" + said + ")" if all(f.recovered is not None for f in findings) else said)


# -- building monitors, run summaries, checking finished runs -------------------------------------
SUMMARY_FILE = "summary.json"


def warmup_of(train: dict) -> int:
    """The warm-up updates of a ``TrainConfig`` mapping (tri_stage without warmup_updates: its first phase)."""
    if train.get("warmup_updates") is not None:
        return int(train["warmup_updates"])
    if train.get("schedule", "tri_stage") == "tri_stage":
        return int(float((train.get("phase_ratio") or [0.0])[0]) * int(train.get("max_update") or 0))
    return 0


def pretrain_monitor(objective: dict, train: dict) -> HealthMonitor:
    """The monitor of a pretraining run from its objective and train mappings (``recipe.json``)."""
    contrastive = objective.get("kind", "contrastive") == "contrastive"
    groups = objective.get("codebook_groups", 2) if contrastive else objective.get("bestrq_codebooks", 1)
    size = groups * objective.get("codebook_entries", 320) if contrastive else None
    return HealthMonitor("pretrain", warmup_updates=warmup_of(train), codebook_size=size, groups=groups,
                         task_change=objective.get("single_frame_updates") or 0)


def ctc_monitor(train: dict, masking: dict | None = None) -> HealthMonitor:
    """The monitor of a CTC run; masks that start late (``masking.start_update``) raise the training
    loss on purpose, a task change rather than divergence."""
    return HealthMonitor("ctc", warmup_updates=warmup_of(train), task_change=(masking or {}).get("start_update") or 0)


def monitor_for_run(run_dir) -> HealthMonitor:
    """The monitor a run was (or would have been) trained with, from ``RUN/recipe.json``."""
    import json
    from pathlib import Path

    path = Path(run_dir) / "recipe.json"
    if not path.is_file():
        raise ValueError(f"{run_dir}: no recipe.json; pass the run directory of sew pretrain or sew finetune")
    recipe = json.loads(path.read_text())
    if "objective" in recipe:
        return pretrain_monitor(recipe["objective"], recipe.get("train", {}))
    if "masking" in recipe and recipe.get("task", "asr") == "asr":
        return ctc_monitor(recipe.get("train", {}), recipe.get("masking"))
    raise ValueError(f"{run_dir}: a classification run; the health monitor watches pretraining and CTC runs")
