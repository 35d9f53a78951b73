"""Streaming animation: push audio chunks of any size, get frames at ``fps`` as soon as they are determined.

The output equals the offline ``Animator.animate`` on the same audio (see ``docs/streaming.md``): the same
16 kHz samples reach the features, mel frame ``i`` is computed once samples up to ``160 i + 200`` are in,
model step ``s`` once the mel frames of step ``s + lookahead`` are in (from steps ``[s - context, s +
lookahead]``, which reproduces the whole-file pass exactly), and output frame ``k`` (at ``k / fps``) once
the first step strictly after its time exists, so linear interpolation sees the same two steps offline does.
``flush()`` ends the stream: the end is zero-padded and the last steps and frames come out as offline.

This module imports no torch: with ``onnx_backend.OnnxFrameModel`` it runs where only numpy, soxr and
onnxruntime are installed; ``runtime.backends.load_stream_model`` gives either backend.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import soxr

from audio2blendshape.audio.constants import HOP_LENGTH, N_MELS, SAMPLE_RATE
from audio2blendshape.audio.decode import downmix
from audio2blendshape.audio.mel import StreamingLogMel, mel_spec
from audio2blendshape.audio.sample_stream import feature_rate
from audio2blendshape.expression.layers import ExpressionControls, ExpressionLayer
from audio2blendshape.names import ARKIT_NAMES
from audio2blendshape.runtime.frame_rate import check_fps, frame_count, frame_times, interpolate
from audio2blendshape.runtime.head import check_head
from audio2blendshape.runtime.idle import IdleLayer

log = logging.getLogger(__name__)

FRAMES_PER_SECOND = SAMPLE_RATE // HOP_LENGTH  # mel frames per second
NONFINITE_POLICIES = ("zero", "raise")


class StreamError(ValueError):
    """A stream that cannot go on (changed sample rate, bad chunk, push after flush); names the time."""


class FrameModelLike(Protocol):
    """What the Streamer needs of a model (``models.torch_backend.TorchPoseModel``, ``OnnxFrameModel``)."""

    names: tuple[str, ...]  # the K output names
    stack: int  # mel frames per model step
    context_steps: int  # past steps an output depends on
    lookahead_steps: int  # future steps an output depends on

    def steps(self, mel: np.ndarray, start: int, count: int) -> np.ndarray:
        """Outputs of steps ``[start, start + count)`` of one window: mel float32 ``(stack W, 80)`` ->
        float32 ``(count, K)``; the window's ends count as the stream's (``model(mel)[0, start:...]``)."""
        ...

    def log_mel_frames(self, block: np.ndarray) -> np.ndarray:
        """Features of an unpadded 16 kHz block ``(n,)`` -> ``(F, 80)`` (see ``audio.mel``)."""
        ...


@dataclass(frozen=True)
class StreamFrames:
    """Frames that became known with one ``push``/``flush``."""

    index: np.ndarray  # int64 (N,): frame numbers, consecutive across calls
    times: np.ndarray  # float64 (N,): time stamps index / fps in seconds of stream audio
    weights: np.ndarray  # float32 (N, K): in the model's name order
    audio_time: float  # seconds of input audio received when they came out
    head: np.ndarray | None = None  # float32 (N, 3) yaw, pitch, roll in radians (as Animation.head), or None

    def __post_init__(self) -> None:
        object.__setattr__(self, "head", check_head(self.head, len(self.index), "StreamFrames"))

    def __len__(self) -> int:
        return len(self.index)


@dataclass(frozen=True)
class Latency:
    """How long after a sound the frame at its time comes out, not counting compute (see docs)."""

    lookahead_s: float  # audio after a step's time stamp that the step needs (STFT half window + model)
    alignment_s: float  # a frame waits for the first model step after it: up to one step
    chunk_s: float  # a sample waits for the end of the chunk it arrives in
    resampler_s: float  # soxr's buffering when the input is not 16 kHz (worst case measured)

    @property
    def total_s(self) -> float:
        """Worst-case latency before compute."""
        return self.lookahead_s + self.alignment_s + self.chunk_s + self.resampler_s


def resampler_delay(rate: int, chunk_samples: int, quality: str = "HQ") -> float:
    """Worst lag in seconds of a soxr stream fed ``chunk_samples`` at a time, measured on 2 s of noise."""
    if rate == SAMPLE_RATE:
        return 0.0
    stream = soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32", quality=quality)
    noise = np.random.default_rng(0).standard_normal(2 * rate).astype(np.float32)
    worst, out = 0.0, 0
    for start in range(0, len(noise), max(1, chunk_samples)):
        out += len(stream.resample_chunk(noise[start : start + chunk_samples]))
        worst = max(worst, (start + chunk_samples) / rate - out / SAMPLE_RATE)
    return worst


@dataclass
class StreamState:
    """Everything a stream carries from one push to the next; only what later outputs still need."""

    input_rate: int  # Hz of the chunks pushed
    features: StreamingLogMel  # pending samples and the next mel frame
    resampler: Any  # soxr.ResampleStream to 16 kHz, or None at 16 kHz
    idle: IdleLayer | None  # blink/gaze state, None when off
    expression: ExpressionLayer | None = None  # emotion/articulation/prosody/head state, None when off
    input_samples: int = 0  # samples pushed, at the input rate
    mel: np.ndarray = field(default_factory=lambda: np.zeros((0, N_MELS), np.float32))  # (F, 80) rolling
    mel_first: int = 0  # mel frame index of mel[0]
    steps: np.ndarray | None = None  # (S, K) rolling model outputs
    step_first: int = 0  # step index of steps[0]
    next_frame: int = 0  # output frame index to emit next
    nonfinite_samples: int = 0  # NaN/inf input samples replaced by 0
    finished: bool = False


class Streamer:
    """Streaming ``Animator.animate``: ``push(chunk) -> StreamFrames`` any number of times, then ``flush()``.

    ``sample_rate``: Hz of the pushed chunks. 16 kHz, and rates featurised natively (44.1, 48 kHz, ...; see
    ``audio.mel``), go straight to the features, as offline; others are resampled to 16 kHz by a streaming
    soxr of ``resample_quality`` ("HQ" gives the samples ``audio.load_audio`` gives).
    ``idle``/``seed``: blinks and gaze as offline (ARKit rigs only). ``expression``: the expression layer as
    offline (``expression.layers.ExpressionControls``; ARKit rigs only), its emotion changeable while the
    stream runs with ``set_emotion``.
    ``on_nonfinite``: "zero" replaces NaN/inf samples by 0 (counted in ``state.nonfinite_samples``, a
    warning logged once) so the stream keeps its timing; "raise" stops with a
    StreamError naming the chunk's time.
    """

    def __init__(
        self,
        model: FrameModelLike,
        sample_rate: int = SAMPLE_RATE,
        fps: float = 60.0,
        idle: bool = True,
        seed: int = 0,
        on_nonfinite: str = "zero",
        resample_quality: str = "HQ",
        expression: ExpressionControls | None = None,
    ) -> None:
        if not (isinstance(sample_rate, (int, np.integer)) and sample_rate > 0):
            raise StreamError(f"sample_rate must be a positive integer of Hz, got {sample_rate!r}")
        if on_nonfinite not in NONFINITE_POLICIES:
            raise ValueError(f"on_nonfinite must be one of {NONFINITE_POLICIES}, got {on_nonfinite!r}")
        if getattr(model, "kind", "frame") != "frame":
            raise TypeError(
                "streaming needs a per-frame model (FrameModel); the seed's SimplifiedModel is not one"
            )
        self.model = model
        self.names = tuple(model.names)
        self.fps = check_fps(fps)
        self.on_nonfinite = on_nonfinite
        self.resample_quality = resample_quality
        keys = [n.lower() for n in self.names]
        arkit = len(keys) == len(ARKIT_NAMES) and set(keys) == {n.lower() for n in ARKIT_NAMES}
        # Rig column of each canonical ARKit shape: the idle layer works in ARKit order, as Animator._idle.
        self._arkit_order = [keys.index(n.lower()) for n in ARKIT_NAMES] if arkit else None
        self.idle, self.seed = idle and arkit, seed
        if expression is not None and not arkit:
            raise ValueError(
                f"the expression layer needs the 52 ARKit shapes; this rig has {len(self.names)} shapes"
            )
        self.expression = expression
        self.state = self._new_state(int(sample_rate))

    @classmethod
    def load(
        cls, path: str | Path | None = None, backend: str = "auto", threads: int | None = 1, **options: Any
    ) -> Streamer:
        """A streamer over the model at ``path`` (an ``.onnx`` export or a checkpoint), or the bundled
        low-latency model, as ``Animator.load`` loads the offline one. ``options`` are ``Streamer``'s own
        (``sample_rate``, ``fps``, ``idle``, ``seed``, ...); one thread suits a live stream's small pushes.
        """
        from audio2blendshape.runtime.backends import load_stream_model  # backends may need torch; defer

        return cls(load_stream_model(path, backend, threads), **options)

    def _new_state(self, rate: int) -> StreamState:
        resampler = None
        if feature_rate(rate) != rate:  # 44.1/48 kHz are featurised at their own rate: no resampler delay
            resampler = soxr.ResampleStream(
                rate, SAMPLE_RATE, 1, dtype="float32", quality=self.resample_quality
            )
        idle = IdleLayer(self.fps, seed=self.seed) if self.idle else None
        layer = None if self.expression is None else ExpressionLayer(self.expression, self.fps, self.seed)
        return StreamState(rate, StreamingLogMel(mel_spec(feature_rate(rate))), resampler, idle, layer)

    def set_emotion(self, preset: str, intensity: float = 1.0, ramp_s: float | None = None) -> None:
        """Move the face to ``preset`` at ``intensity`` over ``ramp_s`` (default: the controls' ramp), from
        the next frame computed on; safe to call from any thread while the stream runs."""
        if self.state.expression is None:
            raise ValueError("set_emotion: create the Streamer with expression=ExpressionControls(...)")
        self.state.expression.set_emotion(preset, intensity, ramp_s)

    @property
    def time(self) -> float:
        """Seconds of input audio pushed so far."""
        return self.state.input_samples / self.state.input_rate

    def latency(self, chunk_seconds: float) -> Latency:
        """The stated latency for chunks of ``chunk_seconds`` (compute time comes on top: measure it)."""
        stack, ahead = self.model.stack, self.model.lookahead_steps
        # Step s needs mel frames up to stack (s + ahead + 1) - 1, each reaching N_FFT / 2 past its centre;
        # the step's own time stamp is the centre of its stack frames.
        spec = self.state.features.spec
        needed = spec.hop * (stack * (ahead + 1) - 1 - (stack - 1) / 2) + spec.n_fft / 2
        chunk_samples = max(1, round(chunk_seconds * self.state.input_rate))
        resampler = 0.0
        if self.state.resampler is not None:
            resampler = resampler_delay(self.state.input_rate, chunk_samples, self.resample_quality)
        return Latency(needed / spec.rate, stack / FRAMES_PER_SECOND, chunk_seconds, resampler)

    def push(self, chunk: np.ndarray, sample_rate: int | None = None) -> StreamFrames:
        """Feed ``(n,)`` or ``(n, channels)`` samples; returns the frames they complete (often none).

        Integer samples are scaled to [-1, 1) (int16 / 32768, uint8 / 128 - 1). ``sample_rate``, when
        given, must equal the stream's: a rate change is an error (flush and start a new Streamer).
        """
        state = self.state
        if state.finished:
            raise StreamError("push() after flush(): start a new Streamer for a new stream")
        if sample_rate is not None and sample_rate != state.input_rate:
            raise StreamError(
                f"sample rate changed from {state.input_rate} to {sample_rate} Hz at {self.time:.3f} s; "
                "flush() this stream and start a new Streamer at the new rate"
            )
        samples = self._mono(chunk)
        if samples.size == 0:
            return self._empty()
        state.input_samples += len(samples)
        if state.resampler is not None:
            samples = state.resampler.resample_chunk(samples, last=False)
        if state.expression is not None:
            state.expression.push_audio(samples, feature_rate(state.input_rate))
        self._add_mel(state.features.push(samples))
        self._run_model(final=False)
        return self._emit(final=False)

    def flush(self) -> StreamFrames:
        """End the stream: the remaining frames, up to ``floor(duration * fps)`` as offline."""
        state = self.state
        if state.finished:
            return self._empty()
        if state.resampler is not None:
            rest = state.resampler.resample_chunk(np.zeros(0, np.float32), last=True)
            if state.expression is not None:
                state.expression.push_audio(rest, feature_rate(state.input_rate))
            self._add_mel(state.features.push(rest))
        if state.expression is not None:
            state.expression.finish_audio(feature_rate(state.input_rate))
        self._add_mel(state.features.flush())
        self._run_model(final=True)
        frames = self._emit(final=True)
        state.finished = True
        return frames

    def _mono(self, chunk: np.ndarray) -> np.ndarray:
        """A chunk as float32 ``(n,)``: downmixed like ``audio.prepare_waveform``, NaN handled."""
        array = np.asarray(chunk)
        kind = array.dtype.kind
        if kind in "iu":  # PCM: signed is two's complement, unsigned (8-bit WAV) is offset by half the range
            array = array.astype(np.float64) / 2.0 ** (8 * array.dtype.itemsize - 1) - (kind == "u")
        elif kind != "f":
            raise StreamError(f"chunk at {self.time:.3f} s: samples must be numbers, got dtype {array.dtype}")
        if array.ndim == 2:
            array = downmix(array)
        elif array.ndim != 1:
            raise StreamError(
                f"chunk at {self.time:.3f} s: expected (n,) or (n, channels), got {array.shape}"
            )
        samples = array.astype(np.float32, copy=False)
        bad = ~np.isfinite(samples)
        if bad.any():
            where = f"chunk at {self.time:.3f} s: {int(bad.sum())} NaN or infinite samples"
            if self.on_nonfinite == "raise":
                raise StreamError(f"{where} (first at sample {int(np.argmax(bad))} of the chunk)")
            if self.state.nonfinite_samples == 0:
                log.warning("%s replaced by 0 (later ones are only counted)", where)
            self.state.nonfinite_samples += int(bad.sum())
            samples = np.where(bad, np.float32(0.0), samples)
        return samples

    def _add_mel(self, frames: np.ndarray) -> None:
        if len(frames):
            self.state.mel = np.concatenate([self.state.mel, frames])

    def _run_model(self, final: bool) -> None:
        """Compute every step whose inputs are complete, from just enough context around them."""
        state, stack = self.state, self.model.stack
        context, ahead = self.model.context_steps, self.model.lookahead_steps
        available = state.features.next_frame // stack  # steps whose mel frames are all known
        ready = available if final else max(0, available - ahead)
        first = state.step_first + (0 if state.steps is None else len(state.steps))
        if ready <= first:
            return
        low, high = max(0, first - context), ready if final else ready + ahead
        begin = stack * low - state.mel_first
        mel = state.mel[begin : begin + stack * (high - low)]
        out = self.model.steps(mel, first - low, ready - first).astype(np.float32, copy=False)
        state.steps = out if state.steps is None else np.concatenate([state.steps, out])
        keep = stack * max(0, ready - context)  # the next call's window starts here
        state.mel, state.mel_first = state.mel[keep - state.mel_first :], keep

    def _step_times(self, first: int, count: int) -> np.ndarray:
        """Time stamps of steps ``first ..``: float64 ``(count,)``, as ``FrameModel.step_times``."""
        stack = self.model.stack
        steps = np.arange(first, first + count, dtype=np.float64)
        return (steps * stack + (stack - 1) / 2) / FRAMES_PER_SECOND

    def _emit(self, final: bool) -> StreamFrames:
        """Interpolate the frames whose surrounding steps are known (all remaining ones when ``final``)."""
        state = self.state
        if state.steps is None or len(state.steps) == 0:
            return self._empty()
        times = self._step_times(state.step_first, len(state.steps))
        if final:
            stop = frame_count(state.features.samples_seen / state.features.spec.rate, self.fps)
        else:  # frames strictly before the last known step: the step after each of them is known
            stop = max(state.next_frame, int(times[-1] * self.fps) - 1)
            while frame_times(stop, 1, self.fps)[0] < times[-1]:  # with the float formula resample uses
                stop += 1
        count = max(0, stop - state.next_frame)
        if count == 0:
            return self._empty()
        at = frame_times(state.next_frame, count, self.fps)
        weights = interpolate(times, state.steps, at)
        head = None
        if state.expression is not None and self._arkit_order is not None:
            weights[:, self._arkit_order], head = state.expression.process(weights[:, self._arkit_order])
        if state.idle is not None and self._arkit_order is not None:
            weights[:, self._arkit_order] = state.idle.process(weights[:, self._arkit_order])
        index = np.arange(state.next_frame, stop, dtype=np.int64)
        state.next_frame = stop
        self._trim_steps(times, frame_times(stop, 1, self.fps)[0])
        return StreamFrames(index, at, weights, self.time, head=head)

    def _trim_steps(self, times: np.ndarray, next_time: float) -> None:
        """Drop steps before the one at or before the next frame's time: interpolation never goes back."""
        state = self.state
        assert state.steps is not None
        left = max(0, int(np.searchsorted(times, next_time, side="right")) - 2)
        state.steps, state.step_first = state.steps[left:], state.step_first + left

    def _empty(self) -> StreamFrames:
        return StreamFrames(
            np.zeros(0, np.int64), np.zeros(0), np.zeros((0, len(self.names)), np.float32), self.time
        )
