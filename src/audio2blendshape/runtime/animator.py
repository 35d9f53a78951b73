"""Offline animation: speech audio of any length -> an :class:`~audio2blendshape.runtime.writers.Animation`.

Audio is decoded, featurised and run through the model in overlapping chunks, so memory stays bounded
(a 2-hour file needs well under 1 GB) while the output equals a single pass over the whole file:

* Decoding (``sample_stream.py``): a file is read block by block, downmixed and resampled to 16 kHz with a
  streaming soxr resampler (the samples ``audio.load_audio`` gives); only those the current chunk needs are
  kept.
* Features: mel frame ``i`` depends on samples ``[160 i - 200, 160 i + 200)``. A chunk's frames are computed
  from its samples plus a margin of two hops (320 samples) on each side (clipped at the file's ends, where the
  whole-file STFT pads with zeros as well), so chunked features equal whole-file features. Audio at 44.1 or
  48 kHz is not resampled but featurised at its own rate (``audio.mel.mel_spec``): the same frames in that
  rate's samples (hop 441 or 480), which is what the ``Streamer`` does at those rates too.
* FrameModel: output steps ``[a, b)`` are computed from input steps ``[a - context_steps, b +
  lookahead_steps)``; the model starts its convolutions from zeros and masks its attention outside the
  input, so every kept step sees exactly what it sees in one pass.
* SimplifiedModel (the seed's model, 300-frame window -> the pose of its centre frame): poses are computed
  every ``hop`` mel frames (and at the last frame), each from the 300 frames centred on it, the features
  padded at both ends with the log-mel of silence; chunks carry 150 frames of margin each side.

Poses are then resampled to ``fps`` (see ``resample.py``) and, for ARKit rigs, the expression layer
(``expression/``, when asked for) directs the performance and the idle layer adds blinks and gaze.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from audio2blendshape.audio.constants import FRAMES_PER_SECOND, HOP_LENGTH, SAMPLE_RATE, WINDOW_FRAMES
from audio2blendshape.audio.decode import AudioError, AudioInput
from audio2blendshape.audio.mel import log_mel
from audio2blendshape.audio.sample_stream import SampleStream, open_stream
from audio2blendshape.expression.layers import ExpressionControls, ExpressionLayer
from audio2blendshape.names import ARKIT_NAMES
from audio2blendshape.runtime.backends import PoseModel, load_pose_model, wrap_module
from audio2blendshape.runtime.frame_rate import check_fps, resample
from audio2blendshape.runtime.idle import IdleLayer
from audio2blendshape.runtime.writers import Animation

log = logging.getLogger(__name__)

# Hops read beyond a chunk's frames on each side: more than the half window a frame reaches.
MARGIN_HOPS = 2
CHUNK_SECONDS = 20.0  # audio per chunk by default: overlaps cost ~2 %, temporaries ~60 MB
SIMPLIFIED_HOP = 4  # mel frames between SimplifiedModel poses (25 poses/s, interpolated)
SIMPLIFIED_BATCH = 32  # windows per SimplifiedModel forward pass
IDLE_BLOCK_FRAMES = 65_536  # frames given to the idle and expression layers at a time
PROSODY_BLOCK_SAMPLES = 480_000  # samples read at a time for the expression layer's prosody
MAX_INITIAL_ROWS = 200_000  # poses reserved up front at most (over an hour of FrameModel steps)

Poses = tuple[np.ndarray, np.ndarray]  # (times (S,) float64 seconds, values (S, K) float32)


class PoseRows:
    """Rows ``(S, K)`` appended chunk by chunk into one array that grows by doubling.

    Not a list of per-chunk arrays: small arrays kept alive between chunks pin glibc heap memory above
    them, and hour-long files then grew the process by gigabytes of freed, unreturned chunk temporaries.
    """

    def __init__(self, expected_rows: int, width: int) -> None:
        # Capped: a damaged header can claim any length, and doubling covers files longer than the cap.
        self.data = np.empty((min(max(1, expected_rows), MAX_INITIAL_ROWS), width), dtype=np.float32)
        self.size = 0

    def append(self, rows: np.ndarray) -> None:
        """Add ``(n, K)`` rows."""
        if self.size + len(rows) > len(self.data):
            grown = np.empty((max(2 * len(self.data), self.size + len(rows)), self.data.shape[1]), np.float32)
            grown[: self.size] = self.data[: self.size]
            self.data = grown
        self.data[self.size : self.size + len(rows)] = rows
        self.size += len(rows)

    def array(self) -> np.ndarray:
        """The rows so far, ``(S, K)`` float32 (a view)."""
        return self.data[: self.size]


def chunk_features(stream: SampleStream, first: int, stop: int) -> np.ndarray:
    """Whole-file log-mel frames ``[first, stop)`` from the samples around them: ``(stop - first, 80)``.

    ``stop`` must not exceed the file's frame count; the stream must still hold samples from
    ``(first - MARGIN_HOPS) * hop`` on.
    """
    hop = stream.spec.hop
    start = max(0, (first - MARGIN_HOPS) * hop)
    mel = log_mel(stream.take(start, (stop + MARGIN_HOPS) * hop), stream.spec.rate)
    offset = (first * hop - start) // hop
    return mel[offset : offset + stop - first]


def silence_features() -> np.ndarray:
    """The log-mel frame of digital silence, ``(80,)``: what the SimplifiedModel's windows are padded with."""
    return log_mel(np.zeros(4 * HOP_LENGTH, dtype=np.float32))[0]


def _known_frames(stream: SampleStream, wanted_samples: int) -> int | None:
    """Read up to ``wanted_samples``; the file's total mel frames if it ended before them, else None."""
    stream.fill(wanted_samples)
    return stream.total // stream.spec.hop if stream.total is not None else None


def frame_model_poses(
    model: Any, stream: SampleStream, chunk_steps: int, tick: Callable[[int], None]
) -> Poses:
    """FrameModel poses of the whole stream, chunk by chunk: times ``(S,)`` and values ``(S, K)``.

    Equal to ``model(log_mel(audio)[None])[0]`` (to float rounding) for any ``chunk_steps``.
    ``tick(samples)`` is called as audio is consumed.
    """
    stack, context, ahead = model.stack, model.context_steps, model.lookahead_steps
    hop = stream.spec.hop
    rows = PoseRows((stream.expected_samples or 0) // (stack * hop) + 1, model.num_shapes)
    begin = 0
    while True:
        end, low, high = begin + chunk_steps, max(0, begin - context), begin + chunk_steps + ahead
        frames = _known_frames(stream, (stack * high + MARGIN_HOPS) * hop)
        if frames is not None:  # the file ends within this chunk's reach: clip to its last step
            steps = frames // stack
            end, high = min(end, steps), min(high, steps)
        if end > begin:
            mel = chunk_features(stream, stack * low, stack * high)
            rows.append(model(mel[None])[0, begin - low : end - low])
            tick(stack * (end - begin) * hop)
        if frames is not None and end >= frames // stack:
            break
        stream.discard((stack * (end - context) - MARGIN_HOPS) * hop)
        begin = end
    if not rows.size:
        raise _too_short(stream, stack)
    return np.asarray(model.step_times(rows.size)), rows.array()


def _too_short(stream: SampleStream, frames: int) -> AudioError:
    return AudioError(
        f"{stream.source}: {stream.total} samples "
        f"({(stream.total or 0) / stream.spec.rate * 1000:.1f} ms) are "
        f"too short to animate; the model needs at least {frames} frames of 10 ms"
    )


def _window_poses(
    model: PoseModel, stream: SampleStream, centres: list[int], frames: int | None, silence: np.ndarray
) -> np.ndarray:
    """Poses ``(len(centres), K)`` of the 300-frame windows centred on mel frames ``centres`` (ascending).

    ``frames`` is the file's frame count when known (else the windows end inside the file); frames outside
    the file are ``silence``.
    """
    half = WINDOW_FRAMES // 2
    low, high = max(0, centres[0] - half), centres[-1] + half
    if frames is not None:
        high = min(high, frames)
    mel = chunk_features(stream, low, high)
    before = np.broadcast_to(silence, (half - (centres[0] - low), len(silence)))  # padded[half]: centres[0]
    after = np.broadcast_to(silence, (centres[-1] + half - high, len(silence)))
    padded = np.concatenate([before, mel, after])
    starts = [c - centres[0] for c in centres]  # window of centre c: padded[c - centres[0] :][:300]
    out = []
    for i in range(0, len(starts), SIMPLIFIED_BATCH):
        batch = np.stack([padded[s : s + WINDOW_FRAMES] for s in starts[i : i + SIMPLIFIED_BATCH]])
        out.append(model(batch))
    return np.concatenate(out)


def simplified_poses(
    model: PoseModel,
    stream: SampleStream,
    chunk_frames: int,
    tick: Callable[[int], None],
    hop: int = SIMPLIFIED_HOP,
) -> Poses:
    """SimplifiedModel poses at mel frames ``0, hop, 2 hop, ...`` and the last frame: times ``i / 100``.

    The pose at frame ``i`` is ``model(window)`` where ``window`` holds frames ``[i - 150, i + 150)`` of the
    whole file's features, frames outside the file being the log-mel of silence.
    """
    half = WINDOW_FRAMES // 2
    silence = silence_features()
    chunk_frames = max(hop, chunk_frames - chunk_frames % hop)
    samples_per_frame = stream.spec.hop
    rows = PoseRows((stream.expected_samples or 0) // (hop * samples_per_frame) + 2, model.num_shapes)
    done: list[int] = []
    begin = 0
    while True:
        end = begin + chunk_frames
        frames = _known_frames(stream, (end + half + MARGIN_HOPS) * samples_per_frame)
        if frames is not None:
            end = min(end, frames)
        centres = list(range(begin, end, hop))
        if frames is not None and frames > 0 and end == frames and (frames - 1) % hop:
            centres.append(frames - 1)  # the last frame gets a pose so interpolation reaches the end
        if centres:
            rows.append(_window_poses(model, stream, centres, frames, silence))
            done += centres
            tick((end - begin) * samples_per_frame)
        if frames is not None and end >= frames:
            break
        stream.discard((end - half - MARGIN_HOPS) * samples_per_frame)
        begin = end
    if not rows.size:
        raise _too_short(stream, 1)
    return np.asarray(done, dtype=np.float64) / FRAMES_PER_SECOND, rows.array()


class Animator:
    """A loaded model that turns speech into animations. ``Animator.load()`` uses the bundled default.

    ``model`` is a pose model (``runtime.backends.PoseModel``: an ONNX export or a wrapped torch model), or
    an in-memory torch ``FrameModel``/``SimplifiedModel``, wrapped here (that needs torch).
    """

    def __init__(
        self,
        model: PoseModel | Any,
        names: Sequence[str] | None = None,
        device: str = "cpu",
        source: str = "",
    ) -> None:
        if not hasattr(model, "kind"):  # a torch module: through the runtime's one door to torch
            if names is None:
                raise ValueError("Animator: a torch model needs its output names")
            model = wrap_module(model, names, device)
        names = tuple(model.names if names is None else names)
        if len(names) != model.num_shapes:
            raise ValueError(f"Animator: {len(names)} names for a model with {model.num_shapes} outputs")
        self.model: PoseModel = model
        self.names = names
        self.source = source or model.source  # the checkpoint it came from, for messages

    @classmethod
    def load(
        cls,
        path: str | Path | None = None,
        device: str = "cpu",
        backend: str = "auto",
        threads: int | None = None,
    ) -> Animator:
        """The model at ``path`` (an ``.onnx`` export or a ``.safetensors`` checkpoint), or the bundled one.

        ``backend``: "auto" runs ``.onnx`` files and the bundled model with onnxruntime and checkpoints with
        PyTorch; "onnx" or "torch" insist (nothing is exported implicitly). ``device`` is torch's ("cpu",
        "cuda", "auto"); ``threads`` the CPU threads of either engine (None: its default).
        """
        model = load_pose_model(path, backend, device, threads)
        return cls(model, model.names)

    @property
    def is_arkit(self) -> bool:
        """Whether the outputs are the 52 ARKit shapes (in any order)."""
        keys = {n.lower() for n in self.names}
        return len(self.names) == len(ARKIT_NAMES) and keys == {n.lower() for n in ARKIT_NAMES}

    def poses(
        self,
        audio: AudioInput,
        sample_rate: int = SAMPLE_RATE,
        chunk_seconds: float = CHUNK_SECONDS,
        progress: bool = False,
    ) -> tuple[np.ndarray, np.ndarray, float]:
        """The model's raw poses: times ``(S,)`` in seconds, values float32 ``(S, K)``, and the duration.

        ``audio`` is a path or samples ``(n,)``/``(n, channels)`` at ``sample_rate``.
        """
        if not chunk_seconds > 0:
            raise ValueError(f"chunk_seconds must be positive, got {chunk_seconds}")
        stream = open_stream(audio, sample_rate)
        chunk_frames = max(2, round(chunk_seconds * FRAMES_PER_SECOND))
        with contextlib.closing(stream), _progress(progress, stream) as tick:
            if self.model.kind == "frame":
                chunk_steps = max(1, chunk_frames // self.model.stack)  # type: ignore[attr-defined]
                times, values = frame_model_poses(self.model, stream, chunk_steps, tick)
            else:
                times, values = simplified_poses(self.model, stream, chunk_frames, tick)
        assert stream.total is not None
        return times, values, stream.total / stream.spec.rate

    def animate(
        self,
        audio: AudioInput,
        fps: float = 60.0,
        idle: bool = True,
        seed: int = 0,
        sample_rate: int = SAMPLE_RATE,
        chunk_seconds: float = CHUNK_SECONDS,
        progress: bool = False,
        expression: ExpressionControls | None = None,
    ) -> Animation:
        """Animate ``audio`` (a path, or samples ``(n,)``/``(n, channels)`` at ``sample_rate``).

        Returns an :class:`Animation` with ``floor(duration * fps)`` frames, frame ``k`` at ``k / fps`` s.
        ``idle`` adds seeded blinks and gaze (ARKit rigs only; other rigs are left as the model made them).
        ``expression`` directs the performance: emotion, articulation, expressiveness and head motion
        (``expression.layers.ExpressionControls``; ARKit rigs only, seeded by ``seed``). Head motion fills
        ``Animation.head``; without it ``head`` is None.
        """
        fps = check_fps(fps)
        times, values, duration = self.poses(audio, sample_rate, chunk_seconds, progress)
        weights = resample(times, values, duration, fps)
        del values
        head = None
        if expression is not None:
            weights, head = self.express(weights, audio, sample_rate, fps, seed, expression)
        if idle and self.is_arkit:
            weights = self._idle(weights, fps, seed)
        elif idle:
            log.debug("idle layer skipped: the rig of %s is not ARKit", self.source)
        return Animation(self.names, fps, weights, duration, head=head)

    def express(
        self,
        weights: np.ndarray,
        audio: AudioInput,
        sample_rate: int,
        fps: float,
        seed: int,
        controls: ExpressionControls,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The expression layer over ``(T, K)`` weights at ``fps`` (changed in place, in blocks), as
        ``animate`` applies it: (weights, head ``(T, 3)`` radians or None). ``audio`` is read again only
        when ``controls`` need its prosody."""
        if not self.is_arkit:
            raise ValueError(
                f"{self.source}: emotion, articulation, expressiveness and head motion need the 52 ARKit "
                f"shapes; this rig has {len(self.names)} shapes"
            )
        layer = ExpressionLayer(controls, fps, seed)
        if controls.needs_prosody:  # the prosody is read from the audio again, block by block
            with contextlib.closing(open_stream(audio, sample_rate)) as stream:
                start = 0
                rate = stream.spec.rate
                while len(block := stream.take(start, start + PROSODY_BLOCK_SAMPLES)):
                    layer.push_audio(block, rate)
                    start += len(block)
                    stream.discard(start)
            layer.finish_audio(rate)
        keys = [n.lower() for n in self.names]
        order = [keys.index(n.lower()) for n in ARKIT_NAMES]
        heads = []
        for first in range(0, len(weights), IDLE_BLOCK_FRAMES):
            block = weights[first : first + IDLE_BLOCK_FRAMES]
            block[:, order], head = layer.process(block[:, order])
            heads.append(head)
        head_track = None
        if layer.head is not None:
            head_track = np.concatenate([h for h in heads if h is not None] or [np.zeros((0, 3), np.float32)])
        return weights, head_track

    def _idle(self, weights: np.ndarray, fps: float, seed: int) -> np.ndarray:
        """Add the idle layer in place to ``(T, 52)`` weights in this rig's column order; returns them.

        In blocks through ``IdleLayer``, which gives the same frames as ``apply_idle`` on the whole array
        without its whole-length temporaries.
        """
        keys = [n.lower() for n in self.names]
        order = [keys.index(n.lower()) for n in ARKIT_NAMES]  # rig column of each canonical shape
        layer = IdleLayer(fps, seed=seed)
        for first in range(0, len(weights), IDLE_BLOCK_FRAMES):
            block = weights[first : first + IDLE_BLOCK_FRAMES]
            block[:, order] = layer.process(block[:, order])
        return weights


@contextlib.contextmanager
def _progress(enabled: bool, stream: SampleStream) -> Iterator[Callable[[int], None]]:
    """A tqdm bar in seconds of audio, when ``enabled`` and stderr is a terminal; yields ``tick(samples)``."""
    if not (enabled and sys.stderr is not None and sys.stderr.isatty()):
        yield lambda samples: None  # no bar: tqdm is not even imported (it costs more than a short clip)
        return
    from tqdm import tqdm

    rate, expected = stream.spec.rate, stream.expected_samples
    total = None if expected is None else round(expected / rate, 1)
    bar = tqdm(total=total, unit="s", desc=Path(stream.source).name, leave=False)
    try:
        yield lambda samples: bar.update(round(samples / rate, 2))
    finally:
        bar.close()
