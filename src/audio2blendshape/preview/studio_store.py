"""What the studio's server holds: decoded clips, loaded models, animations, uploaded captures.

Everything a browser sends is untrusted. An upload is written under the session's temporary folder with a
name made here (never the sender's), only ever decoded as audio or read as a Live Link CSV, and deleted when
it is not that. Clips are kept as the samples the model animated (16 kHz, or the file's own rate where the
models featurise that rate natively: 24, 32, 44.1, 48 kHz ...), and played back from a WAV of exactly those
samples, so sound and face cannot drift apart through two decoders' different delays.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile

from audio2blendshape.audio.constants import SAMPLE_RATE
from audio2blendshape.audio.decode import AudioError
from audio2blendshape.audio.sample_stream import open_stream
from audio2blendshape.runtime.animator import Animator
from audio2blendshape.runtime.livelink_csv import read_livelink_csv
from audio2blendshape.runtime.writers import Animation, get_writer

BUNDLED = "bundled"  # the model id of the package's own model
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")  # what an upload may be decoded as
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]+")


class StudioError(ValueError):
    """A request the studio refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class StudioConfig:
    """Limits and animation settings of one studio session."""

    max_upload_bytes: int = 64 * 1024 * 1024  # larger request bodies are refused with 413 before reading
    max_audio_seconds: float = 600.0  # longer clips are refused: their curves are sent to the page whole
    fps: float = 60.0  # animation frame rate
    idle: bool = True  # add blinks and gaze (ARKit rigs)
    seed: int = 0  # seeds the blinks and gaze


@dataclass
class Clip:
    """One audio clip: its display name and the mono samples the models animate, at ``rate``."""

    id: str  # made by the store: "c1", "c2", ...
    name: str  # shown in the page; sanitised, never used as a path
    samples: np.ndarray  # float32 (n,) at rate
    rate: int = SAMPLE_RATE  # Hz: 16 kHz, or the file's own rate where it is featurised natively

    @property
    def duration(self) -> float:
        """Seconds of audio."""
        return len(self.samples) / self.rate


def display_name(name: str) -> str:
    """A sender's file name cut to its last component, safe characters and 80 characters."""
    base = re.split(r"[\\/]", name or "")[-1]
    return _SAFE_NAME.sub("_", base)[:80] or "audio"


def decode_clip(path: Path, max_seconds: float, source: str) -> tuple[np.ndarray, int]:
    """All samples of ``path`` as the models animate them, and their rate (16 kHz, or the file's own where
    it is featurised natively, as ``audio.sample_stream`` decides); clips over ``max_seconds`` are refused."""
    try:
        with contextlib.closing(open_stream(path, SAMPLE_RATE)) as stream:
            rate = stream.spec.rate
            limit = round(max_seconds * rate)
            samples = np.array(stream.take(0, limit + 1), dtype=np.float32)
    except (AudioError, RuntimeError, OSError) as error:
        raise StudioError(f"{source}: not audio the studio can decode ({error})") from error
    if len(samples) > limit:
        raise StudioError(f"{source}: longer than {max_seconds:g} s", 413)
    return samples, rate


def animation_json(animation: Animation) -> dict[str, object]:
    """The page's form of an animation: names, fps, duration and frames rounded to 6 decimals."""
    frames = np.round(animation.weights.astype(np.float64), 6).tolist()
    return {
        "names": list(animation.names),
        "fps": animation.fps,
        "duration": animation.duration,
        "frames": frames,
    }


@dataclass
class StudioStore:
    """Clips, models and animations of one studio session, under the temporary folder ``workdir``."""

    workdir: Path  # uploads are written here, with names made by the store
    models: dict[str, Path | None]  # model id -> checkpoint path (None: the bundled model)
    config: StudioConfig = field(default_factory=StudioConfig)
    clips: dict[str, Clip] = field(default_factory=dict)
    _animators: dict[str, Animator] = field(default_factory=dict)
    _animations: dict[tuple[str, str], Animation] = field(default_factory=dict)
    _captures: dict[str, Animation] = field(default_factory=dict)
    _counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _new_id(self, prefix: str) -> str:
        with self._lock:
            return f"{prefix}{next(self._counter)}"

    def _decode(self, path: Path, source: str) -> tuple[np.ndarray, int]:
        return decode_clip(path, self.config.max_audio_seconds, source)

    def add_file(self, path: Path) -> Clip:
        """A clip from a local file the user named on the command line."""
        clip = Clip(self._new_id("c"), display_name(path.name), *self._decode(path, str(path)))
        self.clips[clip.id] = clip
        return clip

    def _upload_path(self, name: str, allowed: tuple[str, ...]) -> Path:
        suffix = Path(display_name(name)).suffix.lower()
        if suffix not in allowed:
            raise StudioError(f"{display_name(name)}: expected one of {', '.join(allowed)}", 415)
        return self.workdir / f"upload-{self._new_id('u')}{suffix}"

    def add_upload(self, data: bytes, name: str) -> Clip:
        """A clip from uploaded bytes: decoded as audio or refused; the upload itself is not kept."""
        path = self._upload_path(name, AUDIO_SUFFIXES)
        try:
            path.write_bytes(data)
            samples, rate = self._decode(path, display_name(name))
        finally:
            path.unlink(missing_ok=True)
        clip = Clip(self._new_id("c"), display_name(name), samples, rate)
        self.clips[clip.id] = clip
        return clip

    def add_capture(self, data: bytes, name: str) -> tuple[str, Animation]:
        """A Live Link Face CSV take, uploaded: read as curves or refused; the upload itself is not kept."""
        path = self._upload_path(name, (".csv",))
        try:
            path.write_bytes(data)
            take = read_livelink_csv(path)
        except (ValueError, OSError) as error:
            raise StudioError(f"{display_name(name)}: {error}".replace(str(path), "upload")) from error
        finally:
            path.unlink(missing_ok=True)
        animation = Animation(take.names, take.fps, take.curves, take.duration)
        capture_id = self._new_id("k")
        self._captures[capture_id] = animation
        return capture_id, animation

    def clip(self, clip_id: str) -> Clip:
        if clip_id not in self.clips:
            raise StudioError(f"no clip {clip_id!r}", 404)
        return self.clips[clip_id]

    def wav(self, clip_id: str) -> bytes:
        """The clip's samples as 16-bit WAV: what the page plays."""
        buffer = io.BytesIO()
        clip = self.clip(clip_id)
        soundfile.write(buffer, np.clip(clip.samples, -1.0, 1.0), clip.rate, subtype="PCM_16", format="WAV")
        return buffer.getvalue()

    def animator(self, model_id: str) -> Animator:
        """The loaded model ``model_id`` (loaded once; the bundled one runs on onnxruntime)."""
        if model_id not in self.models:
            raise StudioError(f"no model {model_id!r}", 404)
        with self._lock:
            if model_id not in self._animators:
                self._animators[model_id] = Animator.load(self.models[model_id])
            return self._animators[model_id]

    def animation(self, clip_id: str, model_id: str) -> Animation:
        """The clip animated by the model (computed once per pair), or an uploaded capture by its id."""
        if model_id in self._captures:
            return self._captures[model_id]
        key = (clip_id, model_id)
        if key not in self._animations:
            clip, animator = self.clip(clip_id), self.animator(model_id)
            cfg = self.config
            self._animations[key] = animator.animate(
                clip.samples, fps=cfg.fps, idle=cfg.idle, seed=cfg.seed, sample_rate=clip.rate
            )
        return self._animations[key]

    def export(self, clip_id: str, model_id: str, fmt: str) -> tuple[bytes, str]:
        """The animation written by the CLI's writer for ``fmt``: the file's bytes and its download name."""
        try:
            writer = get_writer(fmt)
        except ValueError as error:
            raise StudioError(str(error)) from error
        animation = self.animation(clip_id, model_id)
        stem = Path(self.clip(clip_id).name).stem if clip_id in self.clips else "capture"
        path = self.workdir / f"export-{self._new_id('e')}{writer.extension}"
        try:
            writer(animation, path)
            return path.read_bytes(), f"{stem}.{model_id}{writer.extension}"
        except ValueError as error:
            raise StudioError(str(error).replace(str(path), f"{stem}{writer.extension}")) from error
        finally:
            path.unlink(missing_ok=True)
