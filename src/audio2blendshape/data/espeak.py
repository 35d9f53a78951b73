"""eSpeak NG through ctypes: speech with the exact sample position of every phoneme.

The ``espeakng-loader`` wheel ships ``libespeak-ng.so`` and its voice data, so nothing is installed system
wide and nothing is downloaded. The library is run in synchronous mode with phoneme events on: every
chunk of PCM handed to the synth callback comes with the events that fall in it, and each event's
``sample`` counts samples from the start of the utterance in the same 22,050 Hz stream, so a phoneme's
time is ``sample / sample_rate`` exactly (tests/test_espeak.py checks this against the signal energy).

eSpeak keeps global state and is not thread-safe: one engine per process, initialised on first use,
calls serialised with a lock; parallel synthesis uses processes (see ``synth``). Its generator state
also carries over from one utterance to the next, so by default each utterance is spoken in a forked
child of a process that never speaks itself (``synthesize(isolated=True)``): same input, same samples.

A voice can also be a variant file's text (``SpeechSettings.variant_text``, see ``voice_variants``). eSpeak
reads variants only from its data folder, which belongs to the installed wheel, so each engine runs on a
private folder of links to that data, removed at exit, and writes generated variants into its own
``voices/!v``.
"""

from __future__ import annotations

import ctypes
import multiprocessing.util
import os
import pickle
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# espeak_AUDIO_OUTPUT / option flags / event types / parameters, from speak_lib.h.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_INITIALIZE_PHONEME_IPA = 0x0002
_INITIALIZE_DONT_EXIT = 0x8000  # on a missing data path, return an error instead of exit()ing Python
_EVENT_LIST_TERMINATED = 0
_EVENT_PHONEME = 7
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PHONEMES_IPA = 0x02  # espeak_TextToPhonemes: IPA rather than eSpeak's ASCII names; bits 8-23 a separator
_PARAM_RATE, _PARAM_VOLUME, _PARAM_PITCH, _PARAM_RANGE = 1, 2, 3, 4
_BUFFER_MS = 500  # PCM per callback; larger means fewer Python round trips

PHONEME_SEPARATOR = "_"  # between the phonemes of a word in ``text_to_phonemes``' answer (words: spaces)
PAUSE = "_"  # symbol of a pause span (eSpeak's own name for a pause; visemes maps it to silence)


class EspeakError(RuntimeError):
    """eSpeak NG could not be loaded, did not know a voice, or failed to speak a text."""


class _EventId(ctypes.Union):
    _fields_ = (("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8))


class _Event(ctypes.Structure):
    # espeak_EVENT: the pointer-sized user_data forces 8-byte alignment of the union on 64-bit builds,
    # which ctypes reproduces from these declarations.
    _fields_ = (
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    )


_Callback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


@dataclass(frozen=True)
class SpeechSettings:
    """How eSpeak speaks one text."""

    voice: str  # eSpeak voice name: a language ("en-us", "cmn") with an optional "+variant" ("en-us+f3")
    rate: int = 175  # words per minute, 80..450
    pitch: int = 50  # base pitch, 0..100 (50 = the voice's own)
    pitch_range: int = 50  # intonation range, 0..100 (0 = monotone)
    volume: int = 100  # amplitude, 0..200
    seed: int = 0  # seeds eSpeak's noise generator (breathiness, aspiration), which is otherwise random
    variant_text: str = ""  # a variant file's text, spoken as the "+variant" of ``voice``; "" = installed


@dataclass(frozen=True)
class PhonemeEvent:
    """One phoneme event: where the phoneme starts in the PCM, and its IPA (``""`` for a pause)."""

    sample: int  # sample index in the synthesis' own stream (22,050 Hz)
    symbol: str  # IPA as eSpeak writes it, stress marks included; "" for pauses


@dataclass(frozen=True)
class Synthesis:
    """Speech from eSpeak: ``samples`` float32 ``(n,)`` in [-1, 1] at ``sample_rate``, and its events."""

    samples: np.ndarray  # (n,) float32
    sample_rate: int  # Hz, 22,050 for eSpeak NG
    events: tuple[PhonemeEvent, ...]  # phoneme events in time order

    @property
    def duration(self) -> float:
        """Seconds of audio."""
        return self.samples.shape[0] / self.sample_rate


class _Engine:
    """The library handle, its callback and the buffers the callback fills during one ``synth`` call."""

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as error:
            raise EspeakError(
                "the espeakng-loader package is not installed (pip install espeakng-loader)"
            ) from error
        installed = Path(espeakng_loader.get_data_path())
        self.private_error = ""  # why generated variants are unavailable, if they are
        try:
            self.data_path = _private_data_folder(installed)
        except OSError as error:  # no writable temp folder or no symbolic links: installed voices only
            self.data_path, self.private_error = installed, str(error)
        try:
            self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        except OSError as error:
            raise EspeakError(f"cannot load {espeakng_loader.get_library_path()}: {error}") from error
        self.lib.espeak_Initialize.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int)
        self.lib.espeak_Initialize.restype = ctypes.c_int
        self.lib.espeak_SetVoiceByName.argtypes = (ctypes.c_char_p,)
        self.lib.espeak_SetParameter.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int)
        self.lib.espeak_Synth.argtypes = (
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
            ctypes.c_void_p, ctypes.c_void_p,
        )  # fmt: skip
        self.lib.espeak_ng_SetRandSeed.argtypes = (ctypes.c_long,)
        self.lib.espeak_Info.argtypes = (ctypes.c_void_p,)
        self.lib.espeak_Info.restype = ctypes.c_char_p
        to_phonemes = self.lib.espeak_TextToPhonemes
        to_phonemes.argtypes = (ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_int)
        to_phonemes.restype = ctypes.c_char_p
        options = _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_PHONEME_IPA | _INITIALIZE_DONT_EXIT
        rate = self.lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, _BUFFER_MS, str(self.data_path).encode(), options
        )
        if rate <= 0:
            raise EspeakError(f"espeak_Initialize failed (data at {self.data_path}, code {rate})")
        self.sample_rate = int(rate)
        self.chunks: list[np.ndarray] = []
        self.events: list[PhonemeEvent] = []
        # Kept on self: ctypes does not own the C function pointer, and a collected one would crash.
        self.callback = _Callback(self._on_audio)
        self.lib.espeak_SetSynthCallback(self.callback)
        self.voice = ""

    def _on_audio(self, wav: ctypes.Array, count: int, events: ctypes.Array) -> int:
        if count > 0 and wav:
            self.chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            event = events[i]
            if event.type == _EVENT_PHONEME:
                # An 8-byte field: a long IPA string may be cut inside a UTF-8 sequence.
                symbol = event.id.string.decode("utf-8", errors="ignore")
                self.events.append(PhonemeEvent(int(event.sample), symbol))
            i += 1
        return 0

    def set_voice(self, name: str) -> None:
        if name == self.voice:
            return
        language, _, variant = name.partition("+")
        if variant and not (self.data_path / "voices" / "!v" / variant).is_file():
            # eSpeak silently ignores an unknown variant; a typo would quietly give the default voice.
            raise EspeakError(f"eSpeak voice {name!r}: no variant {variant!r} (see espeak.variant_names())")
        if self.lib.espeak_SetVoiceByName(name.encode()) != 0:
            raise EspeakError(f"eSpeak voice {name!r}: no such language voice {language!r}")
        self.voice = name

    def write_variant(self, voice: str, text: str) -> None:
        """Write ``text`` as the variant file of ``voice``'s ``+variant``; eSpeak reads it on the switch."""
        variant = voice.partition("+")[2]
        if not _VARIANT_NAME.fullmatch(variant):
            raise EspeakError(
                f"eSpeak voice {voice!r}: a generated variant needs a name of 1-30 letters, digits, - or _"
            )
        if self.private_error:
            raise EspeakError(
                f"eSpeak voice {voice!r}: generated variants need a private eSpeak data folder, which could "
                f"not be made ({self.private_error})"
            )
        path = self.data_path / "voices" / "!v" / variant
        if path.is_symlink():
            raise EspeakError(f"eSpeak voice {voice!r}: {variant!r} is an installed variant; rename yours")
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            self.voice = ""  # the name may be the same, but the voice is not

    def speak(self, text: str, settings: SpeechSettings) -> Synthesis:
        if settings.variant_text:
            self.write_variant(settings.voice, settings.variant_text)
        self.set_voice(settings.voice)
        for parameter, value, low, high in (
            (_PARAM_RATE, settings.rate, 80, 450),
            (_PARAM_PITCH, settings.pitch, 0, 100),
            (_PARAM_RANGE, settings.pitch_range, 0, 100),
            (_PARAM_VOLUME, settings.volume, 0, 200),
        ):
            if not low <= value <= high:
                raise EspeakError(f"eSpeak parameter {parameter} = {value} is outside {low}..{high}")
            self.lib.espeak_SetParameter(parameter, int(value), 0)
        self.lib.espeak_ng_SetRandSeed(int(settings.seed))
        data = text.encode("utf-8") + b"\0"
        self.chunks, self.events = [], []
        code = self.lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if code != 0:
            raise EspeakError(
                f"espeak_Synth failed with code {code} for voice {settings.voice!r}: {text[:60]!r}"
            )
        samples = np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.int16)
        events = tuple(sorted(self.events, key=lambda e: e.sample))  # stable: same-sample order kept
        self.chunks, self.events = [], []
        return Synthesis((samples.astype(np.float32) / 32768.0), self.sample_rate, events)

    def phonemes(self, text: str) -> list[str]:
        """eSpeak's phonemes of ``text``, one string per clause, without speaking it."""
        data = ctypes.create_string_buffer(text.encode("utf-8"))
        pointer = ctypes.c_void_p(ctypes.addressof(data))
        mode = _PHONEMES_IPA | ord(PHONEME_SEPARATOR) << 8
        clauses: list[str] = []
        # eSpeak translates one clause per call and moves the pointer past it, to NULL after the last;
        # the bound only guards against a library that would not move it.
        while pointer.value and len(clauses) <= len(text):
            result = self.lib.espeak_TextToPhonemes(ctypes.byref(pointer), _CHARS_UTF8, mode)
            clauses.append(result.decode("utf-8", errors="replace") if result else "")
        return clauses


_VARIANT_NAME = re.compile(r"[A-Za-z0-9_-]{1,30}")  # eSpeak keeps "!v/" + the name in 40 bytes


def _remove_if_owner(folder: Path, owner: int) -> None:
    if os.getpid() == owner:
        shutil.rmtree(folder, ignore_errors=True)


def _private_data_folder(installed: Path) -> Path:
    """A temporary copy of eSpeak's data folder made of links, except ``voices/!v``, which is writable."""
    root = Path(tempfile.mkdtemp(prefix="audio2blendshape-espeak-"))
    owner = os.getpid()
    # multiprocessing's exit hook runs in the main process at exit and in pool workers as they finish
    # (plain atexit does not: workers leave through os._exit); a forked child never removes its parent's.
    multiprocessing.util.Finalize(None, _remove_if_owner, (root, owner), exitpriority=0)
    voices = installed / "voices"
    for folder, skip in ((installed, "voices"), (voices, "!v"), (voices / "!v", "")):
        target = root / folder.relative_to(installed)
        target.mkdir(exist_ok=True)
        for entry in folder.iterdir():
            if entry.name != skip:
                (target / entry.name).symlink_to(entry)
    return root


_LOCK = threading.Lock()
_ENGINE: _Engine | None = None
_ENGINE_PID = -1


def _engine() -> _Engine:
    global _ENGINE, _ENGINE_PID
    if _ENGINE is None or os.getpid() != _ENGINE_PID:
        _ENGINE, _ENGINE_PID = _Engine(), os.getpid()
    return _ENGINE


def _speak_in_child(engine: _Engine, text: str, settings: SpeechSettings) -> Synthesis:
    """Run ``engine.speak`` in a forked child and return its result through a pipe.

    eSpeak keeps generator state in C statics that no API call resets (the pitch-flutter phase, the
    glottal wave phase, resonator memories), so in-process output depends on everything spoken before.
    The parent initialises the library but never speaks, so every child starts from the same state.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: speak, send, and leave without running any Python cleanup
        status = 0
        try:
            os.close(read_end)
            try:
                payload = pickle.dumps(engine.speak(text, settings), protocol=pickle.HIGHEST_PROTOCOL)
            except BaseException as error:  # sent to the parent, which raises it
                payload = pickle.dumps(EspeakError(str(error)))
            with os.fdopen(write_end, "wb") as pipe:
                pipe.write(payload)
        except BaseException:
            status = 1
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        payload = pipe.read()
    _, status = os.waitpid(pid, 0)
    if status != 0 or not payload:
        raise EspeakError(f"the eSpeak child process failed (status {status}) for voice {settings.voice!r}")
    result = pickle.loads(payload)
    if isinstance(result, EspeakError):
        raise result
    return result


def synthesize(text: str, settings: SpeechSettings, isolated: bool = True) -> Synthesis:
    """Speak ``text`` (UTF-8, plain text, no SSML) -> samples ``(n,)`` float32 at 22,050 Hz plus events.

    ``isolated`` (the default, where ``os.fork`` exists) speaks in a short-lived forked child, so the
    same text and settings give the same samples whatever this process spoke before; ``False`` speaks
    in-process, a little faster, with output that varies slightly with the history.
    Raises ``EspeakError`` for an unknown voice or variant, out-of-range settings, an empty text, or a
    text that produced no audio.
    """
    if not text.strip():
        raise EspeakError(f"eSpeak voice {settings.voice!r}: the text is empty")
    with _LOCK:
        engine = _engine()
        if isolated and hasattr(os, "fork"):
            result = _speak_in_child(engine, text, settings)
        else:
            result = engine.speak(text, settings)
    if result.samples.size == 0 or not any(e.symbol for e in result.events):
        raise EspeakError(f"eSpeak voice {settings.voice!r} produced no speech for {text[:60]!r}")
    return result


def text_to_phonemes(text: str, voice: str = "en-us") -> list[list[str]]:
    """How eSpeak would say ``text`` in ``voice``, without speaking: per word, its phonemes in IPA.

    Phonemes are as in ``PhonemeEvent.symbol`` (stress marks kept, ``"ɑːɹ"`` is one phoneme); the words are
    the ones eSpeak reads, so a number or a Roman numeral may become several. Raises ``EspeakError`` for
    an unknown voice.
    """
    with _LOCK:
        engine = _engine()
        engine.set_voice(voice)
        try:
            clauses = engine.phonemes(text)
        finally:
            # The next ``speak`` switches the voice afresh, as it would have without this call, so speech
            # stays the same whatever was looked up before.
            engine.voice = ""
    words = (word.split(PHONEME_SEPARATOR) for clause in clauses for word in clause.split())
    return [phonemes for phonemes in ([p for p in word if p] for word in words) if phonemes]


def variant_names() -> tuple[str, ...]:
    """Names of the voice variants shipped with the library data (usable as ``language+variant``)."""
    import espeakng_loader

    folder = Path(espeakng_loader.get_data_path()) / "voices" / "!v"
    return tuple(sorted(p.name for p in folder.iterdir() if p.is_file()))


def library_version() -> str:
    """eSpeak NG's version string, e.g. ``"1.52.0"``."""
    with _LOCK:
        info = _engine().lib.espeak_Info(None)
    return info.decode() if info else "unknown"
