"""Idle layer: natural blinks and small gaze shifts added to the eye columns at inference.

Blinks and gaze are not predictable from speech, so training labels leave the eye columns at 0 and
this layer adds them afterwards, seeded and switchable. Events come from a counter-based generator
(event ``k`` of a seed always draws the same numbers), so the same seed gives the same animation
whether it is rendered whole (``apply_idle``), in chunks (``IdleLayer``) or frame by frame
(``idle_step`` with an explicit ``IdleState``) -- the streaming path needs no look-ahead.

Blinks: gaps of ``min_blink_gap`` plus a gamma(2) draw, mean ``60 / blinks_per_minute`` s; duration
uniform-ish in 100-300 ms (fast close, slower open); both eyes together. Gaze: a new small target every
``60 / saccades_per_minute`` s on average, reached by a 50 ms eased saccade; yaw/pitch become the
eyeLookIn/Out/Up/Down curves of both eyes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

from audio2blendshape.names import ARKIT_NAMES

EYE_NAMES: tuple[str, ...] = tuple(n for n in ARKIT_NAMES if n.startswith("eye"))  # 14, ARKit order
EYE_COLUMNS = np.array([ARKIT_NAMES.index(n) for n in EYE_NAMES])  # their columns in a (T, 52) array
_BLINK = np.array([EYE_NAMES.index("eyeBlinkLeft"), EYE_NAMES.index("eyeBlinkRight")])
_LOOK = np.array([i for i, n in enumerate(EYE_NAMES) if n.startswith("eyeLook")])
_BLINK_STREAM, _SACCADE_STREAM = 1, 2  # separate counters so blink draws never shift gaze draws
# Events drawn are kept: a folder of clips with one seed draws the same first events for every clip, and a
# generator costs more to seed than a short clip's whole eye animation.
_DRAWS_KEPT = 4096


@dataclass(frozen=True)
class IdleConfig:
    """Statistics of the idle animation."""

    blinks_per_minute: float = 20.0  # mean rate; conversational blinking is about 15-25 a minute
    min_blink_gap: float = 0.8  # s; shortest time between blink starts
    blink_min: float = 0.10  # s; shortest blink
    blink_max: float = 0.30  # s; longest blink
    blink_close_fraction: float = 0.35  # share of a blink spent closing (closing is faster than opening)
    saccades_per_minute: float = 30.0  # mean rate of gaze shifts
    min_saccade_gap: float = 0.4  # s; shortest fixation
    saccade_duration: float = 0.05  # s; time to move to a new target
    gaze_yaw_sd: float = 0.10  # spread of horizontal targets, in eyeLook curve units
    gaze_pitch_sd: float = 0.06  # spread of vertical targets
    gaze_max: float = 0.30  # targets are clipped to +/- this


@dataclass(frozen=True)
class IdleState:
    """Where the idle animation stands; immutable, so a stream can keep and resume it."""

    seed: int  # the animation's seed
    blink_index: int  # current or next blink event
    blink_start: float  # s; its start
    blink_duration: float  # s; its duration
    blink_amplitude: float  # its peak eyeBlink value
    saccade_index: int  # the latest saccade event
    saccade_start: float  # s; its start
    gaze_from: tuple[float, float]  # (yaw, pitch) before it
    gaze_to: tuple[float, float]  # (yaw, pitch) it moves to
    next_saccade: float  # s; start of the next saccade
    last_time: float = -np.inf  # s; the latest frame rendered (frames must not go back in time)


def _rng(seed: int, stream: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed % 2**63, stream, index])


@lru_cache(maxsize=_DRAWS_KEPT)
def _blink_draw(seed: int, index: int, config: IdleConfig) -> tuple[float, float, float]:
    """Gap before blink ``index`` (from the previous start, or from 0), its duration and amplitude."""
    rng = _rng(seed, _BLINK_STREAM, index)
    mean_gap = 60.0 / config.blinks_per_minute
    gap = config.min_blink_gap + rng.gamma(2.0, max(mean_gap - config.min_blink_gap, 0.0) / 2.0)
    if index == 0:
        gap = rng.uniform(0.3, mean_gap)  # a clip may start anywhere in a blink cycle
    duration = config.blink_min + (config.blink_max - config.blink_min) * rng.beta(2.0, 3.0)
    return float(gap), float(duration), float(rng.uniform(0.9, 1.0))


@lru_cache(maxsize=_DRAWS_KEPT)
def _saccade_draw(seed: int, index: int, config: IdleConfig) -> tuple[float, tuple[float, float]]:
    """Gap before saccade ``index`` (from the previous start) and its (yaw, pitch) target."""
    rng = _rng(seed, _SACCADE_STREAM, index)
    mean_gap = 60.0 / config.saccades_per_minute
    gap = config.min_saccade_gap + rng.exponential(max(mean_gap - config.min_saccade_gap, 1e-3))
    yaw, pitch = rng.normal(0.0, (config.gaze_yaw_sd, config.gaze_pitch_sd))
    limit = config.gaze_max
    return float(gap), (float(np.clip(yaw, -limit, limit)), float(np.clip(pitch, -limit, limit)))


def initial_state(seed: int, config: IdleConfig | None = None) -> IdleState:
    """The state before frame 0: first blink drawn, gaze straight ahead."""
    config = config or IdleConfig()
    gap, duration, amplitude = _blink_draw(seed, 0, config)
    next_gap, _ = _saccade_draw(seed, 1, config)
    _, target = _saccade_draw(seed, 0, config)
    return IdleState(seed, 0, gap, duration, amplitude, 0, 0.0, (0.0, 0.0), target, next_gap)


def _advance(state: IdleState, time: float, config: IdleConfig) -> IdleState:
    """Move past every blink that has ended and every saccade that has started by ``time``."""
    while time >= state.blink_start + state.blink_duration:
        k = state.blink_index + 1
        gap, duration, amplitude = _blink_draw(state.seed, k, config)
        state = replace(state, blink_index=k, blink_start=state.blink_start + gap)
        state = replace(state, blink_duration=duration, blink_amplitude=amplitude)
    while time >= state.next_saccade:
        k = state.saccade_index + 1
        _, target = _saccade_draw(state.seed, k, config)
        gap, _ = _saccade_draw(state.seed, k + 1, config)
        state = replace(state, saccade_index=k, saccade_start=state.next_saccade, gaze_from=state.gaze_to)
        state = replace(state, gaze_to=target, next_saccade=state.next_saccade + gap)
    return state


def _blink_shape(phase: np.ndarray, close: float) -> np.ndarray:
    """Lid closure for blink phase in [0, 1) (0 outside): quick sine close, slower cosine open."""
    closing = np.sin(0.5 * np.pi * np.clip(phase / close, 0.0, 1.0))
    opening = np.cos(0.5 * np.pi * np.clip((phase - close) / (1.0 - close), 0.0, 1.0))
    inside = (phase >= 0.0) & (phase < 1.0)
    return np.where(inside, np.where(phase < close, closing, opening), 0.0)


def _gaze_curves(yaw: np.ndarray, pitch: np.ndarray) -> np.ndarray:
    """eyeLook curves ``(T, 8)`` (order of ``EYE_NAMES`` look columns) from yaw/pitch ``(T,)``.

    Positive yaw looks towards the face's left: the left eye looks out and the right eye in.
    """
    by_name = {
        "eyeLookDownLeft": -pitch, "eyeLookInLeft": -yaw, "eyeLookOutLeft": yaw, "eyeLookUpLeft": pitch,
        "eyeLookDownRight": -pitch, "eyeLookInRight": yaw, "eyeLookOutRight": -yaw, "eyeLookUpRight": pitch,
    }  # fmt: skip
    return np.stack([np.maximum(by_name[EYE_NAMES[i]], 0.0) for i in _LOOK], axis=-1)


def _ease(x: np.ndarray) -> np.ndarray:
    return 0.5 - 0.5 * np.cos(np.pi * np.clip(x, 0.0, 1.0))


def _render(state: IdleState, times: np.ndarray, config: IdleConfig) -> np.ndarray:
    """Eye values ``(len(times), 14)`` for frames that all fall in ``state``'s current events."""
    values = np.zeros((len(times), len(EYE_NAMES)))
    phase = (times - state.blink_start) / state.blink_duration
    blink = state.blink_amplitude * _blink_shape(phase, config.blink_close_fraction)
    values[:, _BLINK] = blink[:, None]
    ease = _ease((times - state.saccade_start) / config.saccade_duration)
    yaw = state.gaze_from[0] + (state.gaze_to[0] - state.gaze_from[0]) * ease
    pitch = state.gaze_from[1] + (state.gaze_to[1] - state.gaze_from[1]) * ease
    values[:, _LOOK] = _gaze_curves(yaw, pitch)
    return values


def idle_step(
    state: IdleState, frame_index: int, fps: float, config: IdleConfig | None = None
) -> tuple[IdleState, np.ndarray]:
    """One frame of the idle layer: the new state and the 14 eye values ``(14,)`` in ``EYE_NAMES`` order.

    Frame ``frame_index`` is at ``frame_index / fps`` s; frames must come in non-decreasing time order.
    """
    config = config or IdleConfig()
    time = frame_index / fps
    if time < state.last_time:
        raise ValueError(f"idle_step: frame {frame_index} ({time:.3f} s) is before the last one rendered")
    state = replace(_advance(state, time, config), last_time=time)
    return state, _render(state, np.array([time]), config)[0]


def idle_values(
    state: IdleState, first_frame: int, n_frames: int, fps: float, config: IdleConfig
) -> tuple[IdleState, np.ndarray]:
    """Eye values ``(n_frames, 14)`` for frames ``first_frame ..``; equal to calling ``idle_step`` on each."""
    times = (first_frame + np.arange(n_frames)) / fps
    values = np.zeros((n_frames, len(EYE_NAMES)))
    if not n_frames:
        return state, values
    # Every frame's events at once: the events up to the last frame, then each frame's by searchsorted
    # (the per-frame formulas are _render's, so the values are idle_step's bit for bit).
    final = _advance(state, float(times[-1]), config)
    blink_starts, blink_durations, blink_amplitudes = _blinks(state, final, config)
    blink = np.searchsorted(blink_starts + blink_durations, times, side="right")
    phase = (times - blink_starts[blink]) / blink_durations[blink]
    values[:, _BLINK] = (blink_amplitudes[blink] * _blink_shape(phase, config.blink_close_fraction))[:, None]
    saccade_starts, gaze_from, gaze_to = _saccades(state, final, config)
    saccade = np.searchsorted(saccade_starts, times, side="right") - 1
    ease = _ease((times - saccade_starts[saccade]) / config.saccade_duration)
    yaw = gaze_from[saccade, 0] + (gaze_to[saccade, 0] - gaze_from[saccade, 0]) * ease
    pitch = gaze_from[saccade, 1] + (gaze_to[saccade, 1] - gaze_from[saccade, 1]) * ease
    values[:, _LOOK] = _gaze_curves(yaw, pitch)
    return replace(final, last_time=float(times[-1])), values


def _blinks(state: IdleState, final: IdleState, config: IdleConfig) -> tuple[np.ndarray, ...]:
    """Starts, durations and amplitudes of blinks ``state.blink_index .. final.blink_index``."""
    events = [(state.blink_start, state.blink_duration, state.blink_amplitude)]
    for k in range(state.blink_index + 1, final.blink_index + 1):
        gap, duration, amplitude = _blink_draw(state.seed, k, config)
        events.append((events[-1][0] + gap, duration, amplitude))
    return tuple(np.array(column) for column in zip(*events, strict=True))


def _saccades(state: IdleState, final: IdleState, config: IdleConfig) -> tuple[np.ndarray, ...]:
    """Starts ``(n,)``, gaze before ``(n, 2)`` and targets ``(n, 2)`` of saccades ``state.saccade_index ..
    final.saccade_index``."""
    starts, before, after = [state.saccade_start], [state.gaze_from], [state.gaze_to]
    next_start = state.next_saccade
    for k in range(state.saccade_index + 1, final.saccade_index + 1):
        _, target = _saccade_draw(state.seed, k, config)
        starts.append(next_start)
        before.append(after[-1])
        after.append(target)
        next_start = next_start + _saccade_draw(state.seed, k + 1, config)[0]
    return np.array(starts), np.array(before), np.array(after)


def _merge(curves: np.ndarray, values: np.ndarray, blinks: bool, eye_movement: bool) -> np.ndarray:
    out = np.array(curves, dtype=np.float32, copy=True)
    keep = np.zeros(len(EYE_NAMES), dtype=bool)
    keep[_BLINK] = blinks
    keep[_LOOK] = eye_movement
    cols = EYE_COLUMNS[keep]
    out[:, cols] = np.clip(out[:, cols] + values[:, keep], 0.0, 1.0)
    return out


def _check(curves: np.ndarray, fps: float) -> np.ndarray:
    curves = np.asarray(curves)
    if curves.ndim != 2 or curves.shape[1] != len(ARKIT_NAMES):
        raise ValueError(f"idle layer: expected ARKit curves (T, {len(ARKIT_NAMES)}), got {curves.shape}")
    if not (np.isfinite(fps) and fps > 0):
        raise ValueError(f"idle layer: fps must be a positive number, got {fps}")
    return curves


def apply_idle(
    curves: np.ndarray,
    fps: float,
    seed: int = 0,
    blinks: bool = True,
    eye_movement: bool = True,
    config: IdleConfig | None = None,
) -> np.ndarray:
    """ARKit curves ``(T, 52)`` with blinks and/or gaze added to the eye columns: float32 ``(T, 52)``.

    Deterministic for a seed; the added values are summed onto the input eye columns and clipped to [0, 1].
    """
    curves = _check(curves, fps)
    config = config or IdleConfig()
    _, values = idle_values(initial_state(seed, config), 0, len(curves), fps, config)
    return _merge(curves, values, blinks, eye_movement)


class IdleLayer:
    """The idle layer for a stream: feed consecutive chunks of curves, get them back with eyes added."""

    def __init__(
        self,
        fps: float,
        seed: int = 0,
        blinks: bool = True,
        eye_movement: bool = True,
        config: IdleConfig | None = None,
    ) -> None:
        self.fps = fps
        self.blinks = blinks
        self.eye_movement = eye_movement
        self.config = config or IdleConfig()
        self.state = initial_state(seed, self.config)
        self.frame = 0  # index of the next frame to come

    def process(self, chunk: np.ndarray) -> np.ndarray:
        """The next ``(t, 52)`` frames of the stream -> float32 ``(t, 52)`` with eye columns added."""
        chunk = _check(chunk, self.fps)
        self.state, values = idle_values(self.state, self.frame, len(chunk), self.fps, self.config)
        self.frame += len(chunk)
        return _merge(chunk, values, self.blinks, self.eye_movement)
