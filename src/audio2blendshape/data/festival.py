"""Festival's diphone voices: speech cut from recordings of real people, with festival's phone timing.

eSpeak is a formant synthesiser: every voice it has, however varied, is one machine's sound. A diphone
voice is made of short pieces of one real speaker's recorded speech, so its spectrum, breath and voice
quality are a person's. Festival (Debian packages ``festival`` and ``festvox-*``) runs as a child
process per utterance, reading a Scheme script on its standard input: the text never passes through a
shell, and it is escaped for a Scheme string literal. Festival writes the waveform and the segment
(phone) end times into a private temporary folder; both are read back and the folder removed.

Festival's phone names (the ``radio`` phone set of the American voices, the ``italian`` set of the
Italian ones) are mapped to IPA here (``PHONES``, one table per phone set), so corpus records hold the
same kind of symbols as eSpeak's and ``visemes`` reads them with one table. An unknown phone is an error
naming it and the voice.

Voice changes per utterance: a duration stretch (speaking rate), the mean and spread of the f0 targets
(scaled in the utterance before the waveform is made, so it works for every intonation model), and a
"tract" factor that plays the result faster or slower, which moves pitch and formants together as a
shorter or longer vocal tract would; the phone times are scaled with it, so the timing stays exact.

Festival's HMM/HTS and clustergen voices (``*hts*``, ``cmu_us_*_cg``, ``*arctic*``) are refused: they are
kept out of training for independent checks of the model on speech it has never been near. The one that
Debian packages, ``slt_hts`` (``RESERVED_VOICES``), speaks only through ``reserved_voice`` for the test-only
corpora of ``data check-corpus`` (``check_corpus``).
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from audio2blendshape.data.espeak import PAUSE
from audio2blendshape.data.visemes import PhonemeSpan

APT_COMMAND = (
    "sudo apt-get install --no-install-recommends festival festvox-kallpc16k festvox-kdlpc16k "
    "festvox-italp16k festvox-itapc16k"
)
TIMEOUT_S = 60.0  # per utterance; a few seconds of speech take festival well under a second
END_TOLERANCE_S = 0.05  # segments may end this far past the waveform (rounding); further is an error


class FestivalError(RuntimeError):
    """Festival is missing, a voice is missing or refused, or festival failed on a text."""


@dataclass(frozen=True)
class FestivalVoice:
    """One festival diphone voice we train on."""

    function: str  # festival's voice name, selected by calling ``(voice_<function>)``
    language: str  # our language id (``synth.LANGUAGES`` key) of its speech
    reads: tuple[str, ...]  # language ids whose generated texts it speaks (its own and close ones)
    phoneset: str  # festival's phone set, a key of PHONES
    package: str  # the Debian package that installs it
    speaker: str  # who was recorded, for the docs and reports


# Short name -> voice. rab (British, mrpa phones) is not packaged by Debian 12, so it is not here.
VOICES: dict[str, FestivalVoice] = {
    # The en-gb texts are the en-us words with British names; an American voice reads them as en-us.
    "kal": FestivalVoice(
        "kal_diphone", "en-us", ("en-us", "en-gb"), "radio", "festvox-kallpc16k", "American English male"
    ),
    "ked": FestivalVoice(
        "ked_diphone", "en-us", ("en-us", "en-gb"), "radio", "festvox-kdlpc16k", "American English male"
    ),
    "lp": FestivalVoice("lp_diphone", "it", ("it",), "italian", "festvox-italp16k", "Italian female"),
    "pc": FestivalVoice("pc_diphone", "it", ("it",), "italian", "festvox-itapc16k", "Italian male"),
}
DEFAULT_VOICES: tuple[str, ...] = tuple(VOICES)

# Never trained on: these make only test-only check corpora (``check_corpus``). Their names match _REFUSED,
# so ``check_voice``, the gate of every training path, refuses them.
RESERVED_VOICES: dict[str, FestivalVoice] = {
    "slt_hts": FestivalVoice(
        "cmu_us_slt_arctic_hts", "en-us", ("en-us",), "radio", "festvox-us-slt-hts",
        "American English female (CMU ARCTIC slt), statistical parametric (HTS)",
    ),
}  # fmt: skip

# Festival phone -> IPA per phone set. Comments mark the cases that are not plain ARPAbet/SAMPA.
PHONES: dict[str, dict[str, str]] = {
    "radio": {  # the American voices: ARPAbet in lower case, TIMIT's extras
        "aa": "ɑ", "ae": "æ", "ah": "ʌ", "ao": "ɔ", "aw": "aʊ", "ax": "ə", "ay": "aɪ", "b": "b", "ch": "tʃ",
        "d": "d", "dh": "ð", "eh": "ɛ", "er": "ɝ", "ey": "eɪ", "f": "f", "g": "ɡ", "hh": "h", "ih": "ɪ",
        "iy": "i", "jh": "dʒ", "k": "k", "l": "l", "m": "m", "n": "n", "ng": "ŋ", "ow": "oʊ", "oy": "ɔɪ",
        "p": "p", "r": "ɹ", "s": "s", "sh": "ʃ", "t": "t", "th": "θ", "uh": "ʊ", "uw": "u", "v": "v",
        "w": "w", "y": "j", "z": "z", "zh": "ʒ",
        "axr": "ɚ",  # r-coloured schwa ("butter")
        "dx": "ɾ",  # the flap of American "water"
        "nx": "n",  # TIMIT's nasal flap ("winner"): the tongue taps like an n, the lips do nothing
        "el": "əl",  # syllabic consonants: a schwa-like opening, then the consonant
        "em": "əm",
        "en": "ən",
        "hv": "ɦ",  # voiced h between vowels
        "pau": PAUSE, "h#": PAUSE,
        "brth": PAUSE,  # an audible breath: the lips are apart but not speaking
    },
    "italian": {  # SAMPA-like, case matters; a trailing 1 marks the stressed vowel
        "i": "i", "e": "e", "E": "ɛ", "a": "a", "o": "o", "O": "ɔ", "u": "u",
        "i1": "ˈi", "e1": "ˈe", "E1": "ˈɛ", "a1": "ˈa", "o1": "ˈo", "O1": "ˈɔ", "u1": "ˈu",
        "j": "j", "w": "w", "p": "p", "t": "t", "k": "k", "b": "b", "d": "d", "g": "ɡ", "f": "f",
        "s": "s", "v": "v", "z": "z", "m": "m", "n": "n", "l": "l", "ng": "ŋ",
        "r": "r",  # a trill, not the American approximant
        "S": "ʃ", "Z": "ʒ", "ts": "ts", "tS": "tʃ", "dz": "dz", "dZ": "dʒ",
        "J": "ɲ",  # "gn" of "gnocchi"
        "L": "ʎ",  # "gl" of "figlio"
        "nf": "ɱ",  # n before f or v ("inferno"): the lips take the labiodental shape
        "#": PAUSE,
    },
}  # fmt: skip

_REFUSED = re.compile(r"hts|_cg$|^cmu_us_|arctic", re.IGNORECASE)


@dataclass(frozen=True)
class FestivalSettings:
    """How one text is spoken."""

    voice: str  # key of VOICES
    stretch: float = 1.0  # duration factor on top of the voice's own (> 1: slower)
    pitch: float = 1.0  # factor on the f0 targets' mean
    pitch_range: float = 1.0  # factor on the f0 targets' spread around their mean
    tract: float = 1.0  # playback speed: > 1 raises pitch and formants together and shortens the speech
    gain: float = 1.0  # amplitude factor; the result is scaled down if its peak would pass 0.99


@dataclass(frozen=True)
class FestivalSpeech:
    """Festival's speech: ``samples`` float32 ``(n,)`` at ``sample_rate``, phone spans tiling it."""

    samples: np.ndarray  # (n,) float32 in [-1, 1]
    sample_rate: float  # Hz: the voice's rate times the tract factor (not always an integer)
    spans: tuple[PhonemeSpan, ...]  # IPA spans from 0 to the end of the samples, pauses as "_"

    @property
    def duration(self) -> float:
        """Seconds of audio."""
        return self.samples.shape[0] / self.sample_rate


def check_voice(name: str) -> FestivalVoice:
    """The voice ``name`` (a key of ``VOICES``); HTS/clustergen voices and unknown names are refused."""
    clean = name.strip()
    if _REFUSED.search(clean):
        raise FestivalError(
            f"festival voice {clean!r} is an HTS/clustergen voice; those are reserved for independent "
            f"checks and never used for training (training voices: {', '.join(VOICES)})"
        )
    if clean not in VOICES:
        raise FestivalError(f"unknown festival voice {clean!r}; known: {', '.join(VOICES)}")
    return VOICES[clean]


def reserved_voice(name: str) -> FestivalVoice:
    """A voice of ``RESERVED_VOICES``, for check corpora only; other names are a FestivalError."""
    clean = name.strip()
    if clean not in RESERVED_VOICES:
        raise FestivalError(f"{clean!r} is not a reserved check voice; known: {', '.join(RESERVED_VOICES)}")
    return RESERVED_VOICES[clean]


def _any_voice(name: str) -> FestivalVoice:
    """A training voice or a reserved one: for the synthesis steps, once the caller's gate has passed."""
    return RESERVED_VOICES[name] if name in RESERVED_VOICES else check_voice(name)


def readers(names: tuple[str, ...], language: str) -> tuple[str, ...]:
    """The voices among ``names`` that speak texts of ``language``."""
    return tuple(name for name in names if language in check_voice(name).reads)


@functools.cache
def version() -> str:
    """Festival's version, e.g. ``"2.5.0"``, for the corpus records."""
    answer = subprocess.run(
        [festival_binary(), "--version"], capture_output=True, timeout=TIMEOUT_S, check=False
    ).stdout.decode("latin-1")
    match = re.search(r"System: ([0-9][^:\s]*)", answer)
    return match.group(1) if match else answer.strip()[:40]


def festival_binary() -> str:
    """The ``festival`` program's path, or a FestivalError telling how to install it."""
    path = shutil.which("festival")
    if path is None:
        raise FestivalError(f"festival is not installed; install it with: {APT_COMMAND}")
    return path


def installed_voices() -> tuple[str, ...]:
    """The voices festival lists as installed (``voice.list``), e.g. ``("kal_diphone", ...)``."""
    answer = _run(b"(print (voice.list))\n", Path(tempfile.gettempdir()))
    return tuple(re.findall(r"[A-Za-z0-9_]+", answer))


def check_installed(names: tuple[str, ...]) -> None:
    """Fail early, naming the Debian package, when festival or one of the voices ``names`` is missing."""
    festival_binary()
    for name in names:
        voice = _any_voice(name)
        if voice.function not in installed_voices():
            raise FestivalError(
                f"festival voice {name!r} ({voice.function}) is not installed; "
                f"install it with: sudo apt-get install {voice.package}"
            )


def scheme_string(text: str) -> str:
    """``text`` as a Scheme string literal: backslashes and quotes escaped, control characters spaces."""
    text = "".join(" " if unicodedata.category(c) == "Cc" else c for c in text)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _latin1(script: str) -> bytes:
    """Festival reads bytes; its lexicons are Latin-1. Other letters lose their accents or are dropped."""
    out = []
    for char in script:
        if ord(char) < 256:
            out.append(char)
        else:
            out.extend(c for c in unicodedata.normalize("NFKD", char) if ord(c) < 128)
    return "".join(out).encode("latin-1")


# f0 targets scaled between festival's intonation and waveform steps: the Text utterance type with one
# step more (synthesis.scm's defUttType Text otherwise), so every intonation model is covered.
_F0_STEP = """(define (a2b_scale_f0 utt)
  (let ((targets (utt.relation.items utt 'Target)) (sum 0) (count 0))
    (mapcar (lambda (x) (if (> (item.feat x "f0") 0)
      (begin (set! sum (+ sum (item.feat x "f0"))) (set! count (+ count 1))))) targets)
    (if (> count 0)
      (let ((mean (/ sum count)))
        (mapcar (lambda (x) (if (> (item.feat x "f0") 0)
          (item.set_feat x "f0" (* %(pitch)r (+ mean (* %(range)r (- (item.feat x "f0") mean)))))))
          targets)))
    utt))
(defUttType Text (Initialize utt) (Text utt) (Token_POS utt) (Token utt) (POS utt) (Phrasify utt)
  (Word utt) (Pauses utt) (Intonation utt) (PostLex utt) (Duration utt) (Int_Targets utt)
  (a2b_scale_f0 utt) (Wave_Synth utt))
"""


def build_script(text: str, settings: FestivalSettings, folder: Path) -> str:
    """The Scheme program that speaks ``text`` into ``folder``/speech.wav and ``folder``/speech.segs."""
    voice = _any_voice(settings.voice)
    for field in ("stretch", "pitch", "pitch_range", "tract", "gain"):
        value = getattr(settings, field)
        if not (np.isfinite(value) and 0.25 <= value <= 4.0):
            raise FestivalError(f"festival setting {field} = {value} is outside 0.25..4")
    stretch = float(settings.stretch)
    lines = [
        f"(voice_{voice.function})",
        "(Parameter.set 'Duration_Stretch (* "
        f"{stretch!r} (if (Parameter.get 'Duration_Stretch) (Parameter.get 'Duration_Stretch) 1.0)))",
        _F0_STEP % {"pitch": float(settings.pitch), "range": float(settings.pitch_range)},
        f"(set! utt (Utterance Text {scheme_string(text)}))",
        "(utt.synth utt)",
        f"(utt.save.wave utt {scheme_string(str(folder / 'speech.wav'))} 'riff)",
        f"(utt.save.segs utt {scheme_string(str(folder / 'speech.segs'))})",
    ]
    return "\n".join(lines) + "\n"


def _run(script: bytes, folder: Path) -> str:
    try:
        done = subprocess.run(
            [festival_binary(), "--pipe"], input=script, capture_output=True, cwd=folder, timeout=TIMEOUT_S,
            check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired as error:
        raise FestivalError(f"festival took more than {TIMEOUT_S:.0f} s") from error
    output = (done.stdout + done.stderr).decode("latin-1")
    if done.returncode != 0 or "SIOD ERROR" in output:
        raise FestivalError(f"festival failed (status {done.returncode}): {output.strip()[-300:]}")
    return output


def read_segs(path: Path, voice: str) -> list[tuple[float, str]]:
    """(end time s, IPA) per segment of festival's xlabel file ``path``; unknown phones are errors."""
    table = PHONES[_any_voice(voice).phoneset]
    rows: list[tuple[float, str]] = []
    lines = path.read_text(encoding="latin-1").splitlines()
    body = lines[lines.index("#") + 1 :] if "#" in lines else lines
    for number, line in enumerate(body, start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 3:
            raise FestivalError(f"{path.name}, segment {number}: expected 'end colour phone', got {line!r}")
        if parts[2] not in table:
            raise FestivalError(
                f"festival voice {voice!r} produced phone {parts[2]!r}, which festival.PHONES does not map"
            )
        rows.append((float(parts[0]), table[parts[2]]))
    return rows


def segment_spans(ends: list[tuple[float, str]], duration: float, voice: str) -> tuple[PhonemeSpan, ...]:
    """Spans tiling ``[0, duration]`` from segment end times; the waveform's tail after them is a pause."""
    if not ends:
        raise FestivalError(f"festival voice {voice!r} produced no segments")
    last = ends[-1][0]
    if last > duration + END_TOLERANCE_S:
        raise FestivalError(
            f"festival voice {voice!r}: segments end at {last:.3f} s, after the {duration:.3f} s waveform"
        )
    spans: list[PhonemeSpan] = []
    start = 0.0
    for end, symbol in ends:
        end = min(end, duration)
        if end < start - 1e-6:
            raise FestivalError(f"festival voice {voice!r}: segment times go backwards at {end:.3f} s")
        if end <= start:
            continue
        if spans and symbol == PAUSE == spans[-1].symbol:
            spans[-1] = PhonemeSpan(spans[-1].start, end, PAUSE)
        else:
            spans.append(PhonemeSpan(start, end, symbol))
        start = end
    if duration - start > 1e-6:
        if spans[-1].symbol == PAUSE:
            spans[-1] = PhonemeSpan(spans[-1].start, duration, PAUSE)
        else:
            spans.append(PhonemeSpan(start, duration, PAUSE))
    return tuple(spans)


def synthesize(text: str, settings: FestivalSettings) -> FestivalSpeech:
    """Speak ``text`` with a festival diphone voice -> samples, their rate and IPA phone spans."""
    if not text.strip():
        raise FestivalError("festival: nothing to say (empty text)")
    with tempfile.TemporaryDirectory(prefix="audio2blendshape-festival-") as name:
        folder = Path(name)
        _run(_latin1(build_script(text, settings, folder)), folder)
        try:
            samples, rate = soundfile.read(folder / "speech.wav", dtype="float32", always_2d=True)
        except (OSError, RuntimeError) as error:  # soundfile raises LibsndfileError, a RuntimeError
            raise FestivalError(f"festival wrote no readable waveform for {text[:60]!r}: {error}") from error
        ends = read_segs(folder / "speech.segs", settings.voice)
    samples = samples.mean(axis=1) * float(settings.gain)
    peak = float(np.abs(samples).max()) if samples.size else 0.0
    if peak > 0.99:
        samples *= 0.99 / peak
    spans = segment_spans(ends, samples.shape[0] / rate, settings.voice)
    tract = float(settings.tract)
    if tract != 1.0:  # played at tract x the rate: every time shrinks by the same factor
        spans = tuple(PhonemeSpan(s.start / tract, s.end / tract, s.symbol) for s in spans)
    return FestivalSpeech(samples.astype(np.float32), rate * tract, spans)
