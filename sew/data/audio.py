"""Audio decoding: any WAV / FLAC / OGG file (or its bytes) to a 16 kHz mono float32 waveform.

Decoding goes through ``soundfile`` and resampling through ``soxr``; neither torchaudio,
torchcodec nor FFmpeg is needed. The loader returns raw audio: per-utterance normalisation
is a model setting (``EncoderConfig.normalize_waveform``) applied with the lengths.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from sew.data import rejects

SAMPLE_RATE = 16000


class AudioError(ValueError):
    """A file that cannot be used: unreadable, truncated, empty or with NaN / inf samples."""

    def __init__(self, path: str | Path, reason: str, detail: str = "") -> None:
        self.path = str(path)
        self.reason = reason  # one of the ``sew.data.rejects`` reasons
        self.detail = detail
        message = f"{self.path}: {reason}" + (f" ({detail})" if detail else "")
        super().__init__(message)


@dataclass(frozen=True)
class AudioInfo:
    """What the file held before conversion, and what was done to it."""

    path: str
    sample_rate: int  # original rate
    channels: int  # original channel count
    num_frames: int  # original length, in frames at ``sample_rate``
    resampled: bool
    downmixed: bool


def load_audio(source: str | Path | bytes, target_rate: int = SAMPLE_RATE, name: str | None = None
               ) -> tuple[np.ndarray, AudioInfo]:
    """Decode ``source`` (a path or the file's bytes) to float32 mono ``[T]`` at ``target_rate``.

    ``name`` labels the audio in errors and in ``AudioInfo`` (defaults to the path).
    Raises ``AudioError`` for unreadable, truncated, empty or non-finite audio, and
    ``FileNotFoundError`` for a missing path.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        label = name or "<bytes>"
        if len(source) == 0:
            raise AudioError(label, rejects.EMPTY, "0 bytes")
        handle = io.BytesIO(bytes(source))
    else:
        label = name or str(source)
        if not Path(source).is_file():
            raise FileNotFoundError(f"{label}: audio file not found")
        handle = str(source)
        if Path(source).stat().st_size == 0:
            raise AudioError(label, rejects.EMPTY, "0 bytes")
    try:
        if not isinstance(handle, io.BytesIO):
            _check_wav_size(source, label)  # opens the file: a permission or I/O error is the system's here
        with sf.SoundFile(handle) as f:
            rate, channels, declared = f.samplerate, f.channels, f.frames
            data = f.read(dtype="float32", always_2d=True)  # [T, C]
    except OSError as err:
        raise AudioError(label, rejects.UNREADABLE, err.strerror or str(err)) from None
    except (sf.LibsndfileError, RuntimeError, EOFError) as err:
        reason = rejects.TRUNCATED if "lost sync" in str(err) or "truncat" in str(err) else rejects.UNREADABLE
        raise AudioError(label, reason, str(err).replace(f"'{handle}'", "file").strip()) from None
    if data.shape[0] < declared:
        raise AudioError(label, rejects.TRUNCATED, f"header says {declared} frames, read {data.shape[0]}")
    if data.size == 0:
        raise AudioError(label, rejects.EMPTY, "no samples")
    if not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).any(axis=1).sum())
        raise AudioError(label, rejects.NON_FINITE, f"{bad} of {data.shape[0]} frames")
    wave = data.mean(axis=1) if channels > 1 else data[:, 0]
    if rate != target_rate:
        wave = soxr.resample(wave, rate, target_rate)
    wave = np.ascontiguousarray(np.clip(wave, -1.0, 1.0), dtype=np.float32)
    info = AudioInfo(label, rate, channels, data.shape[0], rate != target_rate, channels > 1)
    return wave, info


SILENCE_PEAK = 1e-4  # below this peak amplitude a file counts as silent


def load_input(path: str | Path, min_samples: int) -> tuple[np.ndarray | None, float, str | None]:
    """A file given to a model at inference (``sew transcribe``, ``classify``, ``features``):
    ``(wave, seconds, None)``, or ``(None, seconds, why)`` when it is missing, cannot be decoded or is
    shorter than ``min_samples`` (the model's receptive field); a silent file comes with a warning."""
    try:
        wave, _ = load_audio(path)
    except FileNotFoundError:
        return None, 0.0, "file not found"
    except AudioError as err:
        return None, 0.0, f"{err.reason}: {err.detail}" if err.detail else err.reason
    seconds = len(wave) / SAMPLE_RATE
    if len(wave) < min_samples:
        return None, seconds, (f"too short: {seconds * 1000:.0f} ms, the model needs at least "
                               f"{min_samples / 16:.0f} ms ({min_samples} samples at 16 kHz)")
    peak = float(np.abs(wave).max())
    return wave, seconds, f"silent audio (peak amplitude {peak:.1e})" if peak < SILENCE_PEAK else None


def resampled_length(num_frames: int, rate: int, target_rate: int = SAMPLE_RATE) -> int:
    """Samples ``load_audio`` returns for ``num_frames`` at ``rate`` (soxr rounds to nearest)."""
    if rate == target_rate:
        return num_frames
    return int(round(num_frames * target_rate / rate))


def header_num_samples(source: str | Path | bytes, target_rate: int = SAMPLE_RATE, name: str | None = None) -> int:
    """Length at ``target_rate`` from the header alone (no decoding); may be wrong for bad files."""
    embedded = isinstance(source, (bytes, bytearray, memoryview))
    label = name or ("<bytes>" if embedded else str(source))
    if not embedded and not Path(source).is_file():
        raise FileNotFoundError(f"{label}: audio file not found")
    try:
        with sf.SoundFile(io.BytesIO(bytes(source)) if embedded else str(source)) as f:
            frames, rate = f.frames, f.samplerate
    except (sf.LibsndfileError, RuntimeError) as err:
        # libsndfile says "System error" for a file it cannot open: ask the system why (only on failure).
        raise AudioError(label, rejects.UNREADABLE, (not embedded and _os_reason(source)) or str(err)) from None
    return resampled_length(frames, rate, target_rate)


def normalize_waveform(x: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    """Zero mean, unit variance over the last axis (``[T]`` or ``[B, T]``, unpadded)."""
    x = np.asarray(x, dtype=np.float32)
    mean = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, keepdims=True)
    return ((x - mean) / np.sqrt(var + eps)).astype(np.float32)


TRIM_FRAME_S = 0.025  # energy frames of trim_edges
TRIM_MARGIN_S = 0.1  # audio kept on each side of the first and last loud frame


EDGE_DB = 25.0  # the edge threshold sew data manifest measures with (and suggests trimming at)


def speech_span(wave: np.ndarray, below_db: float, rate: int = SAMPLE_RATE) -> tuple[int, int]:
    """``(start, end)``: the samples kept when the leading and trailing stretches quieter than ``below_db``
    decibels under the loudest 25 ms frame are cut, ``TRIM_MARGIN_S`` of audio kept on each side.
    The whole wave when nothing is quieter (or everything is digital silence)."""
    n = int(TRIM_FRAME_S * rate)
    if below_db <= 0:
        raise ValueError(f"trim: give the decibels under the loudest frame as a positive number, got {below_db:g}")
    if len(wave) < n:
        return 0, len(wave)
    frames = np.asarray(wave[: len(wave) // n * n], dtype=np.float64).reshape(-1, n)
    power = (frames ** 2).mean(axis=1)
    loud = np.flatnonzero(power > power.max() * 10 ** (-below_db / 10))
    if len(loud) == 0:  # digital silence
        return 0, len(wave)
    margin = int(TRIM_MARGIN_S * rate)
    return max(int(loud[0]) * n - margin, 0), min((int(loud[-1]) + 1) * n + margin, len(wave))


def trim_edges(wave: np.ndarray, below_db: float, rate: int = SAMPLE_RATE) -> np.ndarray:
    """``wave`` without its leading and trailing stretches quieter than ``below_db`` decibels under its
    loudest 25 ms frame (``speech_span``).

    Why: recordings that open and close on seconds of room noise keep the quick CTC recipe on the blank
    plateau (docs/results.md, "The blank plateau reproduced"). The threshold is relative to each recording,
    so its level does not matter; a recording with no quieter edges comes back unchanged.
    """
    start, end = speech_span(wave, below_db, rate)
    return wave[start:end]


def write_flac(path: str | Path, wave: np.ndarray, rate: int = SAMPLE_RATE) -> None:
    """Write a mono float waveform in [-1, 1] as 16-bit FLAC (deterministic bytes)."""
    _write_pcm16(path, wave, rate, "FLAC")


def write_wav(path: str | Path, wave: np.ndarray, rate: int = SAMPLE_RATE) -> None:
    """Write a mono float waveform in [-1, 1] as 16-bit PCM WAV (deterministic bytes)."""
    _write_pcm16(path, wave, rate, "WAV")


def write_ogg(path: str | Path, wave: np.ndarray, rate: int, serial: int = 0x73657721) -> None:
    """Write a mono float waveform in [-1, 1] as OGG Vorbis with deterministic bytes.

    libsndfile gives every Ogg stream a random serial number (and so different page checksums), so
    the same audio would never give the same file; the pages are rewritten with ``serial`` instead.
    """
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(np.asarray(wave, dtype=np.float32), -1.0, 1.0), rate, format="OGG", subtype="VORBIS")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(_reserialize_ogg(buffer.getvalue(), serial))


_BIT_REVERSED = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


def _ogg_crc(page: bytes) -> int:
    """The Ogg page checksum (CRC-32, polynomial 0x04c11db7, not reflected, initial value 0), computed
    with zlib's reflected CRC-32 on bit-reversed bytes: C speed without a table in Python."""
    reflected = zlib.crc32(page.translate(_BIT_REVERSED), 0xFFFFFFFF) ^ 0xFFFFFFFF
    return int(f"{reflected:032b}"[::-1], 2)


def _reserialize_ogg(data: bytes, serial: int) -> bytes:
    """Every page of a single-stream Ogg file given stream serial number ``serial``, checksums redone."""
    out = bytearray(data)
    pos = 0
    while pos < len(out):
        if out[pos:pos + 4] != b"OggS" or pos + 27 > len(out):
            raise ValueError(f"not an Ogg page at byte {pos}; libsndfile wrote an unexpected file")
        segments = out[pos + 26]
        size = 27 + segments + sum(out[pos + 27:pos + 27 + segments])
        out[pos + 14:pos + 18] = struct.pack("<I", serial)
        out[pos + 22:pos + 26] = b"\0\0\0\0"
        out[pos + 22:pos + 26] = struct.pack("<I", _ogg_crc(bytes(out[pos:pos + size])))
        pos += size
    return bytes(out)


def _write_pcm16(path: str | Path, wave: np.ndarray, rate: int, file_format: str) -> None:
    pcm = np.round(np.clip(wave, -1.0, 1.0) * 32767.0).astype(np.int16)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), pcm, rate, format=file_format, subtype="PCM_16")


def _os_reason(path: str | Path) -> str | None:
    """Why the system refuses to read ``path`` (permission, I/O), or None when it reads."""
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as err:
        return err.strerror or str(err)
    return None


def _check_wav_size(path: str | Path, label: str) -> None:
    """Raise for a RIFF/WAVE file whose data chunk is shorter than its header declares.

    libsndfile silently reads what is there, so a half-copied WAV would otherwise pass.
    """
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                return
            chunk_id, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if chunk_id == b"data":
                start = f.tell()
                end = f.seek(0, io.SEEK_END)
                # 0 and 0xFFFFFFFF mark streams written without a final size: not an error.
                if size not in (0, 0xFFFFFFFF) and end - start < size:
                    raise AudioError(label, rejects.TRUNCATED, f"data chunk declares {size} bytes, file has {end - start}")
                return
            f.seek(size + (size & 1), io.SEEK_CUR)
