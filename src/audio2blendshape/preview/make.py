"""Previews of an animation: a PNG plot of its most active curves, or an MP4 of a 2D face with the audio.

Both renderers take plain arrays (curve ``names``, ``fps``, ``weights (T, K)``, 16 kHz ``audio (n,)``), so
they work on model output, dataset labels or anything else; ``preview`` runs a checkpoint on an audio file
and writes one of them, and ``register`` adds the ``preview`` command. Marks (phonemes or words as
``(start s, end s, label)``) come from the caller; the command finds them beside the audio (see
``sidecar_info``), since it does no forced alignment. docs/preview.md has the details.
"""

from __future__ import annotations

import bisect
import io
import json
import math
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from audio2blendshape.atomic import atomic_write
from audio2blendshape.audio.constants import SAMPLE_RATE
from audio2blendshape.audio.decode import load_audio, prepare_waveform
from audio2blendshape.preview.face2d import FaceRenderer, FaceRigError

Mark = tuple[float, float, str]  # start s, end s, label
VIDEO_CODECS = ("libx264", "mpeg4")  # first one PyAV's FFmpeg can encode wins
AUDIO_CODECS = ("aac", "pcm_s16le")
MAX_FPS = 240.0


class PreviewError(ValueError):
    """A preview that cannot be made; the message names the file."""


def check_curves(names: Sequence[str], fps: float, weights: np.ndarray, where: str) -> np.ndarray:
    """Validated float32 weights ``(T, K)`` for ``K = len(names)`` at ``0 < fps <= MAX_FPS``."""
    weights = np.asarray(weights)
    if weights.ndim != 2 or weights.shape[1] != len(names) or weights.shape[0] == 0:
        raise PreviewError(f"{where}: expected weights (frames > 0, {len(names)}), got {weights.shape}")
    if not np.isfinite(weights).all():
        raise PreviewError(f"{where}: the weights hold NaN or infinite values")
    if not (math.isfinite(fps) and 0 < fps <= MAX_FPS):
        raise PreviewError(f"{where}: fps must be in (0, {MAX_FPS:g}], got {fps}")
    return weights.astype(np.float32, copy=False)


def normalize_marks(marks: Sequence[Any] | None, source: str) -> list[Mark]:
    """``(start, end, label)`` rows or ``PhonemeSpan``-like objects as sorted, checked ``Mark`` tuples."""
    clean: list[Mark] = []
    for i, mark in enumerate(marks or ()):
        try:
            if hasattr(mark, "symbol"):
                start, end, label = mark.start, mark.end, mark.symbol
            else:
                start, end, label = mark
            start, end, label = float(start), float(end), str(label)
        except (TypeError, ValueError) as error:
            raise PreviewError(f"{source}: mark {i} is not (start, end, label): {mark!r}") from error
        if not (math.isfinite(start) and math.isfinite(end) and 0 <= start <= end):
            raise PreviewError(f"{source}: mark {i} ({label!r}) has a bad span {start}..{end} s")
        clean.append((start, end, label))
    return sorted(clean)


# ------------------------------------------------------------------------------------------------ PNG plot


def most_active(weights: np.ndarray, top: int) -> np.ndarray:
    """Column indices of the ``top`` curves with the largest variance over time, largest first."""
    order = np.lexsort((-weights.mean(axis=0), -weights.var(axis=0)))  # ties: the larger mean first
    return order[: max(1, top)]


def _draw_marks(axes: Any, marks: Sequence[Mark]) -> None:
    """Alternately shaded bands with their labels above the plot, staggered in two rows to stay legible."""
    from matplotlib.transforms import blended_transform_factory

    above = blended_transform_factory(axes.transData, axes.transAxes)
    for i, (start, end, label) in enumerate(marks):
        if label.strip() in ("", "_", "sil", "SIL", "sp"):
            continue  # pauses are the gaps between bands
        axes.axvspan(start, end, color=("#d9e3f0" if i % 2 else "#eef1e4"), zorder=0, lw=0)
        axes.text((start + end) / 2, 1.01 + 0.045 * (i % 2), label, transform=above, ha="center",
                  va="bottom", fontsize=7, clip_on=False)  # fmt: skip


def plot_curves(
    path: str | Path,
    names: Sequence[str],
    fps: float,
    weights: np.ndarray,
    *,
    marks: Sequence[Any] | None = None,
    top: int = 8,
    title: str | None = None,
) -> Path:
    """Write a PNG of the ``top`` most varying curves over time, marks shaded behind; returns the path.

    ``weights``: ``(T, K)`` at ``fps``, columns ``names`` (any rig); frame ``i`` is drawn at ``i / fps`` s.
    """
    from matplotlib.figure import Figure  # the object API: no pyplot state, no GUI backend

    path = Path(path)
    weights = check_curves(names, fps, weights, str(path))
    marks = normalize_marks(marks, str(path))
    times = np.arange(len(weights)) / fps
    figure = Figure(figsize=(min(max(8.0, 1.6 * times[-1]), 30.0), 4.5), dpi=110, layout="constrained")
    axes = figure.add_subplot()
    _draw_marks(axes, marks)
    for column in most_active(weights, top):
        axes.plot(times, weights[:, column], lw=1.3, label=names[column])
    axes.set(xlim=(0.0, max(times[-1], 1.0 / fps)), ylim=(-0.02, 1.02), xlabel="time (s)", ylabel="weight")
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    axes.set_title(title or path.stem, fontsize=10, pad=24 if marks else 6)

    def write(handle: io.BufferedWriter) -> None:
        figure.savefig(handle, format="png")

    atomic_write(path, write)
    return path


# ------------------------------------------------------------------------------------------------ MP4 video


def _encoder(candidates: Sequence[str], kind: str) -> str:
    import av

    for name in candidates:
        try:
            av.codec.Codec(name, "w")
            return name
        except (av.error.FFmpegError, ValueError):
            continue
    raise PreviewError(f"PyAV's FFmpeg can encode none of the {kind} codecs {', '.join(candidates)}")


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """DejaVu Sans from matplotlib's data: unlike Pillow's default font it has the IPA letters."""
    import matplotlib

    try:
        return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts/ttf/DejaVuSans.ttf"), size)
    except (OSError, ImportError):  # no FreeType or no font file: Pillow's own, IPA shown as boxes
        return ImageFont.load_default()


class _Captions:
    """Draws the mark under way at a time (large) and a fixed caption (small) at the foot of a frame."""

    def __init__(self, marks: Sequence[Mark], caption: str | None, size: int) -> None:
        self.marks, self.starts = marks, [m[0] for m in marks]
        self.caption = caption if caption is None or len(caption) <= 60 else caption[:57] + "..."
        self.big, self.small, self.size = _font(max(10, size // 16)), _font(max(8, size // 36)), size

    def draw(self, image: Image.Image, time: float) -> None:
        draw = ImageDraw.Draw(image)
        i = bisect.bisect_right(self.starts, time) - 1
        if i >= 0 and time < self.marks[i][1]:
            draw.text((self.size * 0.95, self.size * 0.97), self.marks[i][2], fill=(30, 30, 40),
                      font=self.big, anchor="rs")  # fmt: skip
        if self.caption:
            draw.text((self.size * 0.03, self.size * 0.97), self.caption, fill=(30, 30, 40),
                      font=self.small, anchor="ls")  # fmt: skip


def _encode(handle: Any, renderer: FaceRenderer, fps: float, weights: np.ndarray, audio: np.ndarray,
            captions: _Captions) -> None:  # fmt: skip
    """Mux the face frames and the audio into an MP4 on ``handle``, interleaved one frame at a time."""
    import av

    rate = Fraction(fps).limit_denominator(1001)
    with av.open(handle, mode="w", format="mp4") as container:
        video = container.add_stream(_encoder(VIDEO_CODECS, "video"), rate=rate)
        assert isinstance(video, av.VideoStream)  # the codec name is a run-time string: narrow for mypy
        video.width = video.height = renderer.size
        video.pix_fmt = "yuv420p"
        video.options = {"crf": "20", "preset": "veryfast"} if video.codec_context.name == "libx264" else {}
        if video.codec_context.name != "libx264":
            video.bit_rate = 2_000_000  # mpeg4's default (200 kb/s) smears the face
        audio_name = _encoder(AUDIO_CODECS, "audio")
        sound = container.add_stream(audio_name, rate=SAMPLE_RATE, layout="mono")
        assert isinstance(sound, av.AudioStream)
        fmt = "fltp" if audio_name == "aac" else "s16"
        pcm = audio[None, :] if fmt == "fltp" else np.round(audio * 32767).astype(np.int16)[None, :]
        sent = 0
        for i, row in enumerate(weights):
            image = renderer.render_image(row)
            captions.draw(image, i / fps)
            frame = av.VideoFrame.from_ndarray(np.asarray(image), format="rgb24")
            frame.pts = i
            container.mux(video.encode(frame))
            # The audio up to the end of this frame, so the muxer never buffers one stream far ahead.
            upto = (
                len(audio) if i == len(weights) - 1 else min(len(audio), round((i + 1) * SAMPLE_RATE / fps))
            )
            if upto > sent:
                chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm[:, sent:upto]), format=fmt,
                                                   layout="mono")  # fmt: skip
                chunk.sample_rate, chunk.pts, sent = SAMPLE_RATE, sent, upto
                container.mux(sound.encode(chunk))
        container.mux(video.encode(None))
        container.mux(sound.encode(None))


def write_video(
    path: str | Path,
    names: Sequence[str],
    fps: float,
    weights: np.ndarray,
    audio: np.ndarray,
    *,
    sample_rate: int = SAMPLE_RATE,
    marks: Sequence[Any] | None = None,
    caption: str | None = None,
    size: int = 480,
) -> Path:
    """Write an MP4 of the 2D face driven by ``weights`` with ``audio`` muxed in; returns the path.

    ``weights``: ``(T, K)`` ARKit curves at ``fps`` (``T`` video frames); ``audio``: mono ``(n,)`` at
    ``sample_rate`` (stored at 16 kHz). Video is H.264 (libx264) or MPEG-4 Part 2, ``size`` x ``size``;
    audio AAC or PCM, whichever PyAV's FFmpeg has. Raises PreviewError for a rig that is not ARKit.
    """
    path = Path(path)
    weights = check_curves(names, fps, weights, str(path))
    if size < 32 or size % 2:
        raise PreviewError(f"{path}: the video size must be an even number of pixels >= 32, got {size}")
    try:
        renderer = FaceRenderer(names, size=size)
    except FaceRigError as error:
        raise PreviewError(
            f"{path}: cannot draw this rig as a face: {error}; plot it to a .png instead"
        ) from error
    samples = np.clip(prepare_waveform(np.asarray(audio), sample_rate, f"{path} audio"), -1.0, 1.0)
    captions = _Captions(normalize_marks(marks, str(path)), caption, size)
    try:
        import av
    except ImportError as error:
        raise PreviewError(f"{path}: MP4 previews need PyAV ('pip install av')") from error
    try:
        atomic_write(path, lambda handle: _encode(handle, renderer, fps, weights, samples, captions))
    except av.error.FFmpegError as error:
        raise PreviewError(f"{path}: encoding the video failed ({error})") from error
    return path


# ------------------------------------------------------------------------------------------------ the command


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise PreviewError(f"{path}: not a readable JSON file ({error})") from error


def _mark_rows(data: Any, path: Path) -> list[Any]:
    """Rows of a marks file: a list of [start, end, label] or of {start, end, label|symbol} objects, or an
    object (a dataset record) holding such a list under ``phonemes``."""
    rows = data.get("phonemes") if isinstance(data, dict) else data
    if rows is None and isinstance(data, dict):
        return []  # a dataset record without phoneme timing
    if not isinstance(rows, list):
        raise PreviewError(
            f"{path}: expected a list of [start, end, label] rows (or an object with 'phonemes')"
        )
    try:
        return [
            (r["start"], r["end"], r.get("label", r.get("symbol"))) if isinstance(r, dict) else r
            for r in rows
        ]
    except KeyError as error:
        raise PreviewError(f"{path}: a mark object lacks {error}") from error


def sidecar_info(audio: Path) -> tuple[list[Mark], str | None]:
    """Marks and text found beside ``audio``: ``<stem>.phonemes.json`` and ``<stem>.txt``, or for a
    dataset clip ``DIR/audio/<id>.wav`` its record ``DIR/meta/<id>.json`` (its ``phonemes`` and ``text``).
    """
    sidecar, text_file = audio.with_name(audio.stem + ".phonemes.json"), audio.with_suffix(".txt")
    meta = audio.parent.parent / "meta" / f"{audio.stem}.json"
    marks: list[Mark] = []
    text = None
    if sidecar.is_file():
        marks = normalize_marks(_mark_rows(_read_json(sidecar), sidecar), str(sidecar))
    elif audio.parent.name == "audio" and meta.is_file():
        record = _read_json(meta)
        marks = normalize_marks(_mark_rows(record, meta), str(meta))
        text = record.get("text") if isinstance(record, dict) else None
    if text is None and text_file.is_file():
        text = text_file.read_text(encoding="utf-8").strip() or None
    return marks, text


def output_kind(out: Path) -> str:
    """``"png"`` or ``"mp4"`` from the output's suffix (case-insensitive), else PreviewError."""
    kind = out.suffix.lower().lstrip(".")
    if kind not in ("png", "mp4"):
        raise PreviewError(
            f"{out}: the preview is a .png plot or an .mp4 video, not {out.suffix or 'no suffix'!r}"
        )
    return kind


def preview(
    audio: str | Path,
    out: str | Path,
    *,
    checkpoint: str | Path | None = None,
    fps: float = 30.0,
    text: str | None = None,
    marks: Sequence[Any] | None = None,
    top: int = 8,
    size: int = 480,
    idle: bool = True,
    seed: int = 0,
) -> Path:
    """Animate ``audio`` with ``checkpoint`` (None: the bundled default) and write ``out`` (.png or .mp4).

    ``marks`` default to those ``sidecar_info`` finds beside the audio, ``text`` (the plot's title and the
    video's caption) to the sidecar or dataset text.
    """
    from audio2blendshape.runtime.animator import Animator

    audio, out = Path(audio), Path(out)
    kind = output_kind(out)
    found_marks, found_text = sidecar_info(audio)
    marks = found_marks if marks is None else normalize_marks(marks, "marks")
    text = found_text if text is None else text
    animator = Animator.load(checkpoint)
    if kind == "mp4" and not animator.is_arkit:
        raise PreviewError(
            f"{out}: {animator.source} animates a {len(animator.names)}-shape rig that is not ARKit; "
            "the face video needs the 52 ARKit shapes (a .png plot works for any rig)"
        )
    animation = animator.animate(audio, fps=fps, idle=idle, seed=seed, progress=True)
    if kind == "png":
        title = f"{audio.name}: {text}" if text else audio.name
        return plot_curves(
            out, animation.names, animation.fps, animation.weights, marks=marks, top=top, title=title
        )
    samples = load_audio(audio)
    names, weights = animation.names, animation.weights
    return write_video(out, names, animation.fps, weights, samples, marks=marks, caption=text, size=size)
