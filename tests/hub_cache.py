"""A Hugging Face Hub cache made in a test, laid out as ``huggingface_hub`` lays it out:
``models--ORG--NAME/blobs/<sha256>``, ``snapshots/<commit>/<file>`` linking to the blob, and
``refs/main`` holding the commit. Served offline (``HF_HUB_OFFLINE=1``) as if downloaded."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def add_to_hub_cache(cache: Path, repo_id: str, directory: Path, revision: str = "main") -> str:
    """Put the files of ``directory`` into ``cache`` as ``repo_id`` at ``revision``; returns the commit hash."""
    repo = Path(cache) / f"models--{repo_id.replace('/', '--')}"
    files = sorted(p for p in Path(directory).iterdir() if p.is_file())
    commit = hashlib.sha1((repo_id + revision + "".join(p.name for p in files)).encode()).hexdigest()
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    for file in files:
        data = file.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        link = snapshot / file.name
        if link.exists() or link.is_symlink():
            link.unlink()
        link.symlink_to(os.path.relpath(blob, snapshot))
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / revision).write_text(commit)
    return commit
