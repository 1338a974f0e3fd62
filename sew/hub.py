"""Hugging Face Hub ids wherever a model is accepted: ``asapp/sew-d-mid-400k`` (or ``ID@REVISION``).

A spec that names an existing local path is that path. Otherwise one that looks like ``ORG/NAME``
is fetched through ``huggingface_hub`` into its cache (only the files a model directory needs:
configs, weights, the vocabulary) and read from there as a local directory. The library's own
settings apply: ``HF_HUB_CACHE`` / ``HF_HOME`` for the cache, ``HF_HUB_OFFLINE=1`` for no network
(then a model must already be cached), ``HF_TOKEN`` for private models.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

# What a model directory of ours or of transformers needs; no TensorFlow / Flax weights.
MODEL_FILES = ["*.json", "*.safetensors", "pytorch_model*.bin", "*.txt"]
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*(@[\w./-]+)?$")


def is_hub_id(spec: str | Path) -> bool:
    """Whether ``spec`` names a Hub model (``ORG/NAME[@REVISION]``) rather than a local path.

    What looks like a path never goes to the Hub: one that exists, one that starts with ``.`` or ``/`` or
    has more than one ``/`` (the pattern rejects those), and one whose first part is a local directory
    (``runs/typo`` where ``runs/`` exists is a mistyped run directory, not the Hub repository "runs/typo").
    """
    text = str(spec)
    if Path(text).exists() or not _HUB_ID.match(text):
        return False
    return not Path(text.partition("/")[0]).is_dir()


def check_local_model(spec: str | Path) -> None:
    """A clear error for a model argument that is a local path and does not exist."""
    if not is_hub_id(spec) and not Path(spec).exists():
        parent = Path(spec).parent
        near = sorted(p.name for p in parent.iterdir() if p.is_dir())[:8] if parent.is_dir() else []
        hint = f"; {parent} has: {', '.join(near)}" if near else ""
        raise ValueError(f"model path {spec} does not exist (it looks like a local path, so it is not looked up on "
                         f"the Hugging Face Hub){hint}")


def split_revision(spec: str, revision: str | None = None) -> tuple[str, str | None]:
    """``"org/name@rev"`` -> ``("org/name", "rev")``; an explicit ``revision`` wins."""
    repo, _, at = spec.partition("@")
    return repo, revision or at or None


def cache_dir() -> str | None:
    """The Hub cache in force now (read at each call, so a changed ``HF_HUB_CACHE`` is honoured)."""
    return os.environ.get("HF_HUB_CACHE") or None


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").strip().lower() in ("1", "true", "yes", "on")


def cached_snapshot(directory: Path) -> str | None:
    """``ORG--NAME-COMMIT`` when ``directory`` is a snapshot in a Hub cache (not ours to write into), else None."""
    directory = Path(directory)
    repo = directory.parent.parent.name
    if directory.parent.name == "snapshots" and repo.startswith("models--"):
        return f"{repo[len('models--'):]}-{directory.name[:12]}"
    return None


def resolve_model_dir(spec: str | Path, revision: str | None = None) -> Path:
    """A local directory for ``spec``: the path itself, or a Hub id's snapshot in the Hub cache
    (downloaded first unless offline). Raises ``ValueError`` saying what to do when it cannot."""
    if not is_hub_id(spec):
        check_local_model(spec)
        return Path(spec)
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (GatedRepoError, LocalEntryNotFoundError, RepositoryNotFoundError,
                                        RevisionNotFoundError)

    repo, revision = split_revision(str(spec), revision)
    at = f" at revision {revision}" if revision else ""
    try:
        path = snapshot_download(repo, revision=revision, cache_dir=cache_dir(), allow_patterns=MODEL_FILES,
                                 local_files_only=offline())
    except LocalEntryNotFoundError as err:
        where = cache_dir() or "the default Hugging Face cache (HF_HUB_CACHE / HF_HOME)"
        if offline():
            raise ValueError(f"{spec}: not a local directory, and the Hub model {repo}{at} is not in {where} while "
                             "HF_HUB_OFFLINE=1 forbids downloading it; download it once online (or with "
                             f"'hf download {repo}'), or pass a local directory") from err
        raise ValueError(f"{spec}: not a local directory, and the Hub model {repo}{at} could neither be "
                         f"downloaded nor found in {where} ({err})") from err
    except GatedRepoError as err:
        raise ValueError(f"{spec}: the Hub model {repo} is gated; accept its terms on the Hub and log in "
                         "(HF_TOKEN or 'hf auth login')") from err
    except RevisionNotFoundError as err:
        raise ValueError(f"{spec}: the Hub model {repo} has no revision {revision!r}") from err
    except RepositoryNotFoundError as err:
        raise ValueError(f"{spec}: no such local directory, and no Hub model {repo} (or it is private: set "
                         "HF_TOKEN)") from err
    except OSError as err:  # network or disk trouble while downloading
        raise ValueError(f"{spec}: could not fetch the Hub model {repo}{at}: {err}") from err
    return Path(path)


def model_directory(spec: str) -> Path | None:
    """The local directory of a model directory or Hub id, or None for a preset name or YAML file."""
    if not (is_hub_id(spec) or Path(spec).is_dir()):
        return None
    path = resolve_model_dir(spec)
    return path if any((path / name).is_file() for name in ("sew_config.json", "config.json")) else None
