"""The expression layer: articulation, emotion, expressiveness and head motion over lip-sync curves.

``ExpressionControls`` says what to do; ``ExpressionLayer`` does it to consecutive blocks of ARKit curves,
so the ``Animator`` can apply it in large blocks and the ``Streamer`` as frames come out, with the same
result (each part is per frame, or carries its state explicitly). In order:

1. ``articulation`` scales the mouth's motion (timing kept);
2. the emotion (``track`` cues, possibly changed live with ``set_emotion``) is blended in (``blend``);
3. ``expressiveness`` adds prosody-driven brows, eyes and cheeks;
4. ``head_motion`` makes yaw, pitch and roll.

Parts 3 and 4 need the audio's prosody: feed the samples the features are made from (16 kHz, or 44.1 or
48 kHz where the runtime featurises natively) with ``push_audio`` (and
``finish_audio`` at the end) before the frames they cover are processed. Output frame ``k`` (at ``k /
fps``) uses prosody frame ``floor(100 k / fps)``, which needs audio up to 20 ms after the frame: always
there before the model can have made that frame.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from audio2blendshape.audio.constants import FRAMES_PER_SECOND, SAMPLE_RATE
from audio2blendshape.expression.articulation import check_articulation, scale_articulation
from audio2blendshape.expression.blend import blend_expression
from audio2blendshape.expression.expressiveness import apply_expressiveness, check_expressiveness
from audio2blendshape.expression.head_motion import HeadMotion, check_amplitude
from audio2blendshape.expression.presets import PresetError, PresetLibrary
from audio2blendshape.expression.prosody import FEATURES, ProsodyTracker
from audio2blendshape.expression.track import (
    DEFAULT_RAMP_S,
    Cue,
    EmotionTimeline,
    check_cues,
    parse_emotion,
    read_track,
)


@dataclass(frozen=True)
class ExpressionControls:
    """How to direct the performance; the defaults change nothing."""

    cues: tuple[Cue, ...] = ()  # emotion cues (a constant emotion is one cue at 0 s)
    presets: PresetLibrary = field(default_factory=PresetLibrary)  # built-in and user presets by name
    articulation: float = 1.0  # 0.5..1.5: mouth motion muted or exaggerated, timing kept
    expressiveness: float = 0.0  # 0 off; 1 natural prosody-driven brows, eyes, cheeks (up to 2)
    head_motion: float = 0.0  # 0 off; 1 natural speech-driven head motion amplitude (up to 2)
    ramp_s: float = DEFAULT_RAMP_S  # s; how long a live change of emotion takes

    def __post_init__(self) -> None:
        object.__setattr__(self, "cues", tuple(self.cues))
        check_articulation(self.articulation)
        check_expressiveness(self.expressiveness)
        check_amplitude(self.head_motion)
        if not (math.isfinite(self.ramp_s) and self.ramp_s >= 0):
            raise ValueError(f"ramp_s must be a non-negative number of seconds, got {self.ramp_s!r}")
        check_cues(self.cues, self.presets, "emotion")

    @classmethod
    def build(
        cls,
        emotion: str | None = None,
        track: str | Path | None = None,
        presets: Sequence[str | Path] = (),
        articulation: float = 1.0,
        expressiveness: float = 0.0,
        head_motion: float = 0.0,
        ramp_s: float = DEFAULT_RAMP_S,
    ) -> ExpressionControls:
        """Controls from the CLI's spellings: ``emotion="happy=0.6"``, a track file, user preset files."""
        if emotion is not None and track is not None:
            raise ValueError("give a constant emotion or an emotion track, not both")
        library = PresetLibrary.from_files(list(presets))
        cues: list[Cue] = []
        if emotion is not None:
            cues = [parse_emotion(emotion)]
            try:
                library.vector(cues[0].preset)
            except PresetError as error:
                raise PresetError(f"emotion {emotion!r}: {error}") from None
        elif track is not None:
            cues = read_track(track)
            check_cues(cues, library, str(track))
        return cls(tuple(cues), library, articulation, expressiveness, head_motion, ramp_s)

    @property
    def needs_prosody(self) -> bool:
        """Whether the audio's prosody is needed (expressiveness or head motion on)."""
        return self.expressiveness > 0 or self.head_motion > 0

    @property
    def changes_curves(self) -> bool:
        """Whether the curves can differ from the model's (live emotion changes aside)."""
        return bool(self.cues) or self.articulation != 1.0 or self.expressiveness > 0


class ExpressionLayer:
    """The layer for one take or stream: ``process`` consecutive blocks of ``(t, 52)`` ARKit curves."""

    def __init__(self, controls: ExpressionControls, fps: float, seed: int = 0) -> None:
        self.controls, self.fps = controls, fps
        self.timeline = EmotionTimeline(controls.presets, controls.cues)
        self.head = HeadMotion(fps, seed, controls.head_motion) if controls.head_motion > 0 else None
        self.prosody: ProsodyTracker | None = None  # made at the first push_audio, at its rate
        self.needs_prosody = controls.needs_prosody
        self._features = np.zeros((0, len(FEATURES)))
        self._features_first = 0  # prosody frame index of _features[0]
        self.frame = 0  # the next output frame
        self._lock = threading.Lock()
        self._live: list[tuple[str, float, float]] = []

    def push_audio(self, samples: np.ndarray, rate: int = SAMPLE_RATE) -> None:
        """Add samples at ``rate`` Hz (only needed when ``controls.needs_prosody``); one rate per take."""
        if not self.needs_prosody:
            return
        if self.prosody is None:
            self.prosody = ProsodyTracker(rate)
        elif rate != self.prosody.analysis.rate:
            raise ValueError(f"expression layer: audio at {rate} Hz after {self.prosody.analysis.rate} Hz")
        self._add(self.prosody.push(samples))

    def finish_audio(self, rate: int = SAMPLE_RATE) -> None:
        """The audio has ended: its last prosody frames are made."""
        if self.needs_prosody:
            if self.prosody is None:
                self.prosody = ProsodyTracker(rate)
            self._add(self.prosody.flush())

    def _add(self, rows: np.ndarray) -> None:
        if len(rows):
            self._features = np.concatenate([self._features, rows])

    def set_emotion(self, preset: str, intensity: float = 1.0, ramp_s: float | None = None) -> None:
        """Move to ``preset`` at ``intensity`` from the next frame processed on; thread-safe.

        The preset is checked at once (a PresetError for an unknown name), the move happens over ``ramp_s``
        (default: ``controls.ramp_s``).
        """
        ramp = self.controls.ramp_s if ramp_s is None else ramp_s
        cue = Cue(0.0, preset, intensity, ramp)  # checks the numbers
        self.controls.presets.vector(cue.preset)
        with self._lock:
            self._live.append((preset, intensity, ramp))

    def _frame_features(self, count: int) -> np.ndarray:
        """Prosody rows for output frames ``[frame, frame + count)``; drops rows no later frame needs."""
        k = self.frame + np.arange(count)
        rows = np.floor(k * FRAMES_PER_SECOND / self.fps + 1e-9).astype(np.int64)
        available = self._features_first + len(self._features)
        if count and rows[-1] >= available:
            if self.prosody is None or not self.prosody.finished:
                raise RuntimeError(
                    f"expression layer: frame {int(k[-1])} needs prosody frame {int(rows[-1])}, "
                    f"only {available} exist (push the audio first)"
                )
            rows = np.minimum(rows, available - 1)  # past the audio's end: hold its last frame
        picked = self._features[rows - self._features_first]
        if count:
            drop = max(0, int(rows[-1]) - self._features_first)
            self._features, self._features_first = self._features[drop:], self._features_first + drop
        return picked

    def process(self, curves: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The next ``(t, 52)`` ARKit frames -> (float32 ``(t, 52)``, head ``(t, 3)`` radians or None)."""
        curves = np.asarray(curves, dtype=np.float32)
        count = len(curves)
        with self._lock:
            live, self._live = self._live, []
        time = self.frame / self.fps
        for preset, intensity, ramp in live:
            self.timeline.add(Cue(time, preset, intensity, ramp))
        features = self._frame_features(count) if self.needs_prosody else None
        out = curves
        if self.controls.articulation != 1.0:
            out = scale_articulation(out, self.controls.articulation)
        if self.timeline.active:  # until a first cue, the curves stay exactly the model's
            times = (self.frame + np.arange(count)) / self.fps
            out = blend_expression(out, self.timeline.values(times))
        if features is not None and self.controls.expressiveness > 0:
            out = apply_expressiveness(out, features, self.controls.expressiveness)
        head = self.head.process(features) if self.head is not None and features is not None else None
        self.frame += count
        return out.astype(np.float32, copy=False), head
