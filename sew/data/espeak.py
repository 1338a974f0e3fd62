"""eSpeak NG through the ``espeakng-loader`` wheel, driven with ctypes (no system packages).

The library keeps global state, so there is one ``Synthesizer`` per process (``get_synthesizer``).
It runs in synchronous mode: ``espeak_Synth`` returns once the callback has seen every sample.
"""

from __future__ import annotations

import ctypes
import functools
import os

import numpy as np

_SYNCHRONOUS = 2  # espeak_AUDIO_OUTPUT: AUDIO_OUTPUT_SYNCHRONOUS
_RATE, _PITCH = 1, 3  # espeak_PARAMETER
_CHARS_UTF8 = 1
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

_instance: "Synthesizer | None" = None

# English accents and voice variants (``ACCENT+VARIANT``, e.g. ``en-us+m3``) for the built-in tasks;
# every variant is a file in espeak-ng-data/voices/!v (tests/data/test_tasks.py checks).
ACCENTS = ("en", "en-us", "en-gb-scotland", "en-029", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-us-nyc")
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5",
            "klatt", "klatt2", "klatt3", "klatt4", "klatt5", "klatt6", "Alex", "Alicia", "Andrea", "Andy", "Annie",
            "Denis", "Gene", "Henrique", "Hugo", "Lee", "Michael", "Mike", "Nguyen", "Reed", "adam", "anika",
            "announcer", "aunty", "belinda", "benjamin", "boris", "caleb", "croak", "david", "edward", "grandma",
            "grandpa", "gustave", "ian", "iven", "john", "linda", "marcelo", "max", "michel", "miguel", "norbert",
            "pablo", "paul", "quincy", "rob", "robert", "sandro", "shelby", "steph", "travis", "victor",
            "whisper", "zac")


class Synthesizer:
    """Text to int16 audio at ``sample_rate`` (22050 Hz) with a chosen voice, rate and pitch."""

    def __init__(self) -> None:
        import espeakng_loader

        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self.lib.espeak_Initialize.restype = ctypes.c_int
        self.lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self.lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self.lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                          ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        data = espeakng_loader.get_data_path().encode()
        self.sample_rate = self.lib.espeak_Initialize(_SYNCHRONOUS, 0, data, 0)
        if self.sample_rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed ({self.sample_rate}); is {data.decode()} complete?")
        self._chunks: list[np.ndarray] = []
        self._callback = _CALLBACK(self._collect)  # kept alive as long as the library may call it
        self.lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, samples, count, events) -> int:
        if count > 0:
            self._chunks.append(np.ctypeslib.as_array(samples, shape=(count,)).copy())
        return 0  # 0: continue

    def set_voice(self, voice: str) -> None:
        """Select a voice such as ``en-us+f3``; raise ``ValueError`` when eSpeak does not know it."""
        variant = voice.partition("+")[2]
        if variant and variant not in variant_names():  # eSpeak itself silently ignores unknown variants
            raise ValueError(f"eSpeak NG has no voice variant {variant!r} in {voice!r}; "
                             f"the variants are the files of espeak-ng-data/voices/!v")
        status = self.lib.espeak_SetVoiceByName(voice.encode())
        if status != 0:  # e.g. "en-gb" returns 2 and silently keeps the previous voice
            raise ValueError(f"eSpeak NG has no voice {voice!r} (status {status}); British English is 'en'")

    def reset_random(self, seed: int = 0) -> None:
        """Seed eSpeak NG's own random numbers (used by some voices)."""
        self.lib.espeak_ng_SetRandSeed(seed)

    def synthesize(self, text: str, voice: str, rate: int, pitch: int) -> np.ndarray:
        """int16 samples ``[T]`` at ``sample_rate`` for ``text`` (rate in words per minute, pitch 0-100)."""
        self.set_voice(voice)
        self.lib.espeak_SetParameter(_RATE, int(rate), 0)
        self.lib.espeak_SetParameter(_PITCH, int(pitch), 0)
        self._chunks = []
        raw = text.encode("utf-8")
        status = self.lib.espeak_Synth(raw, len(raw) + 1, 0, 0, 0, _CHARS_UTF8, None, None)
        if status != 0:
            raise RuntimeError(f"espeak_Synth failed with status {status} for {text!r}")
        self.lib.espeak_Synchronize()
        return np.concatenate(self._chunks) if self._chunks else np.zeros(0, dtype=np.int16)


def get_synthesizer() -> Synthesizer:
    """This process's synthesizer, created on first use."""
    global _instance
    if _instance is None:
        _instance = Synthesizer()
    return _instance


def in_use() -> bool:
    """Whether this process has started eSpeak NG (a process forked from it inherits the library's state)."""
    return _instance is not None


@functools.cache
def variant_names() -> frozenset[str]:
    """The voice variants this eSpeak NG build has (``m1``, ``f3``, ``klatt``, ...)."""
    import espeakng_loader

    return frozenset(os.listdir(os.path.join(espeakng_loader.get_data_path(), "voices", "!v")))
