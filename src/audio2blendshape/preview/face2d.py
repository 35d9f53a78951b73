"""One frame of a simple 2D cartoon face, moved by ARKit blendshape weights.

The face is a front view, drawn as the viewer sees it: the character's *left* (``eyeBlinkLeft``,
``mouthSmileLeft``, ``jawLeft``) is on the image's *right*. Geometry lives in face units: x to the right,
y downward, the canvas spanning [-1, 1] on both axes; ``FaceRenderer`` scales them to pixels. Shapes are
filled polygons drawn with Pillow at ``supersample`` times the output size and box-filtered down, which is
the antialiasing (Pillow's polygon fill has none of its own).

What moves (every gain below is in face units per unit weight):

- jaw: ``jawOpen`` drops the chin and the lower lip, ``jawLeft/Right`` shift them sideways;
- lips: ``mouthClose`` holds the lips together against ``jawOpen``; ``mouthFunnel``/``mouthPucker`` narrow
  the mouth and round its opening (pucker also thickens the lips); ``mouthSmile``/``mouthStretch`` L/R move
  a corner up/out, ``mouthFrown`` L/R down, ``mouthDimple`` out a little; ``mouthPress`` and
  ``mouthRollLower/Upper`` thin the lips; ``mouthUpperUp``/``mouthLowerDown`` bare the teeth;
  ``mouthShrugUpper/Lower`` push a lip up; ``mouthLeft/Right`` shift the whole mouth; ``tongueOut``;
- eyes: ``eyeBlink`` closes the upper lid onto the lower one, ``eyeWide`` lifts it, ``eyeSquint`` and
  ``cheekSquint`` raise the lower lid, ``eyeLook{In,Out,Up,Down}`` move the iris;
- brows: ``browInnerUp``, ``browDown`` L/R (lower and pull together), ``browOuterUp`` L/R;
- cheeks: ``cheekPuff`` widens the cheeks; ``noseSneer`` lifts the nostrils.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from audio2blendshape.names import ARKIT_NAMES, Rig

Point = tuple[float, float]
Color = tuple[int, int, int]
SIDES: tuple[tuple[str, float], ...] = (("Left", 1.0), ("Right", -1.0))  # side suffix, image x direction
_T = np.linspace(-1.0, 1.0, 21)  # samples across a lip or lid, from the image-left corner to the right one


class FaceRigError(ValueError):
    """Curves whose columns are not the 52 ARKit shapes: the face has nothing to map them to."""


@dataclass(frozen=True)
class Palette:
    """Flat colours of the face (RGB)."""

    background: Color = (226, 232, 240)
    skin: Color = (241, 196, 164)
    shade: Color = (214, 160, 128)  # neck, ears, nose
    hair: Color = (74, 52, 42)
    brow: Color = (82, 56, 44)
    line: Color = (70, 42, 36)  # lid and lip seams
    sclera: Color = (252, 252, 250)
    iris: Color = (70, 118, 160)
    pupil: Color = (22, 22, 28)
    blush: Color = (236, 166, 150)
    lips: Color = (192, 86, 92)
    cavity: Color = (64, 18, 28)
    teeth: Color = (250, 248, 240)
    tongue: Color = (206, 98, 108)


class _Pose:
    """The weights of one frame by ARKit name, clipped to [0, 1] (NaN read as 0)."""

    def __init__(self, weights: np.ndarray, columns: dict[str, int]) -> None:
        clean = np.clip(np.nan_to_num(np.asarray(weights, dtype=np.float64)), 0.0, 1.0)
        self._values = {name: float(clean[col]) for name, col in columns.items()}

    def __getitem__(self, name: str) -> float:
        return self._values[name]

    def side(self, stem: str, side: str) -> float:
        return self._values[stem + side]


# ------------------------------------------------------------------------------------------------ geometry


def _ellipse(cx: float, cy: float, rx: float, ry: float, start: float, stop: float, n: int) -> list[Point]:
    angles = np.linspace(start, stop, n)
    return list(zip((cx + rx * np.cos(angles)).tolist(), (cy + ry * np.sin(angles)).tolist(), strict=True))


def head_outline(p: _Pose) -> list[Point]:
    """Skull (static upper half-ellipse) and jaw (lower half, dropped/shifted at the chin, puffed cheeks)."""
    top = _ellipse(0.0, -0.08, 0.64, 0.8, np.pi, 2 * np.pi, 24)
    theta = np.linspace(0.0, np.pi, 32)  # 0: right temple, pi/2: chin, pi: left temple
    chin = np.sin(theta) ** 3  # how much of the jaw's motion each outline point follows
    puff = 1.0 + 0.16 * p["cheekPuff"] * np.sin(theta) ** 2 * (1.0 - chin)
    x = 0.64 * np.cos(theta) * puff + 0.1 * (p["jawLeft"] - p["jawRight"]) * chin
    y = -0.08 + 0.74 * np.sin(theta) + 0.2 * p["jawOpen"] * chin
    return top + list(zip(x.tolist(), y.tolist(), strict=True))


def hair_outline() -> list[Point]:
    """A cap over the skull with a fringe that stops above the brows."""
    cap = _ellipse(0.0, -0.1, 0.69, 0.85, np.pi * 0.97, np.pi * 2.03, 30)
    fringe = [(0.66, -0.22), (0.55, -0.5), (0.25, -0.6), (0.0, -0.56), (-0.3, -0.62), (-0.58, -0.46),
              (-0.66, -0.22)]  # fmt: skip
    return cap + fringe


def brow_polygon(p: _Pose, side: str, sx: float) -> list[Point]:
    """A tapered brow: thick at the nose end, raised/lowered at its inner and outer ends."""
    down, inner_up, outer_up = p.side("browDown", side), p["browInnerUp"], p.side("browOuterUp", side)
    inner = np.array([sx * (0.1 - 0.035 * down), -0.37 - 0.1 * inner_up + 0.07 * down])
    outer = np.array([sx * 0.48, -0.36 - 0.1 * outer_up + 0.035 * down])
    middle = (inner + outer) / 2 + np.array([0.0, -0.05 + 0.025 * down])
    s = np.linspace(0.0, 1.0, 9)[:, None]
    spine = (1 - s) ** 2 * inner + 2 * s * (1 - s) * middle + s**2 * outer  # quadratic Bézier
    half = (0.026 - 0.014 * s[:, 0])[:, None]  # half-thickness tapers towards the temple
    upper, lower = spine - half * [0.0, 1.0], spine + half * [0.0, 1.0]
    return [tuple(q) for q in upper.tolist()] + [tuple(q) for q in lower[::-1].tolist()]


@dataclass(frozen=True)
class EyeShape:
    """One eye: lid curves over ``_T`` (image x and y of the upper and lower lid) and the iris centre."""

    x: np.ndarray  # (21,)
    upper: np.ndarray  # (21,) y of the upper lid
    lower: np.ndarray  # (21,) y of the lower lid
    iris: Point
    center: Point


def eye_shape(p: _Pose, side: str, sx: float) -> EyeShape:
    """Lids from blink, wide and squint; the iris from the eyeLook shapes (In is towards the nose)."""
    cx, cy, half_width = sx * 0.28, -0.17, 0.13
    bulge = (1.0 - _T**2) ** 0.8
    squint = p.side("eyeSquint", side) + p.side("cheekSquint", side)
    lower = cy + 0.05 * (1.0 - 0.45 * min(squint, 1.5)) * bulge
    opened = cy - 0.075 * (1.0 + 0.45 * p.side("eyeWide", side)) * bulge
    blink = p.side("eyeBlink", side)
    upper = (1.0 - blink) * opened + blink * lower  # a closed lid rests on the lower one
    look = p.side("eyeLookOut", side) - p.side("eyeLookIn", side)
    iris = (cx + sx * 0.065 * look, cy + 0.045 * (p.side("eyeLookDown", side) - p.side("eyeLookUp", side)))
    return EyeShape(cx + half_width * _T, upper, lower, iris, (cx, cy))


@dataclass(frozen=True)
class MouthShape:
    """The lips as curves over ``_T``: x of the upper and lower lip, y of their inner and outer edges."""

    x_upper: np.ndarray  # (21,)
    x_lower: np.ndarray  # (21,) follows the jaw sideways
    upper_outer: np.ndarray  # (21,) y
    upper_inner: np.ndarray  # (21,) y, the top of the opening
    lower_inner: np.ndarray  # (21,) y, the bottom of the opening, >= upper_inner
    lower_outer: np.ndarray  # (21,) y
    upper_teeth: float  # y of the upper teeth's edge (fixed to the skull)
    lower_teeth: float  # y of the lower teeth's edge (moves with the jaw)


def _corners(p: _Pose, width_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Half-width and y offset of each mouth corner, index 0 the image-left (character's right) one."""
    half, lift = [], []
    for side in ("Right", "Left"):
        smile, stretch = p.side("mouthSmile", side), p.side("mouthStretch", side)
        half.append(0.19 * width_scale + 0.035 * smile + 0.06 * stretch + 0.02 * p.side("mouthDimple", side))
        lift.append(-0.08 * smile + 0.07 * p.side("mouthFrown", side) + 0.012 * stretch)
    return np.array(half), np.array(lift)


def mouth_shape(p: _Pose) -> MouthShape:
    """Lips from the jaw, lip-closure, rounding, spread and lip-shape weights (see the module docstring)."""
    mx, my = 0.05 * (p["mouthLeft"] - p["mouthRight"]), 0.4
    drop, shift = 0.2 * p["jawOpen"], 0.1 * (p["jawLeft"] - p["jawRight"])
    funnel, pucker, press = (
        p["mouthFunnel"],
        p["mouthPucker"],
        (p["mouthPressLeft"] + p["mouthPressRight"]) / 2,
    )
    half, lift = _corners(p, max(1.0 - 0.45 * pucker - 0.3 * funnel, 0.3))
    x_upper = mx + np.where(_T < 0, _T * half[0], _T * half[1])
    centre = my + 0.3 * drop  # where the lips meet when mouthClose holds them shut against an open jaw
    # Corner offsets bend the lip line towards the corners only: a U for a smile, an arch for a frown.
    line = centre + np.where(_T < 0, lift[0], lift[1]) * _T**2
    profile = (1.0 - _T**2) ** (0.85 - 0.4 * min(funnel + pucker, 1.0))  # a lens, or an ellipse when round
    # The jaw's lip gap opens 30 % upwards and 70 % downwards of the meeting point: an open jaw without
    # mouthClose leaves the upper lip at rest and the lower lip on the chin.
    gap = 0.26 * max(p["jawOpen"] - p["mouthClose"], 0.0) * (1.0 - 0.5 * press)
    upper_up = 0.05 * (p["mouthUpperUpLeft"] + p["mouthUpperUpRight"]) / 2
    lower_down = 0.06 * (p["mouthLowerDownLeft"] + p["mouthLowerDownRight"]) / 2
    top = -0.3 * gap - upper_up - 0.03 * funnel - 0.012 * p["mouthShrugUpper"]
    bottom = 0.7 * gap + lower_down + 0.03 * funnel - 0.015 * p["mouthShrugLower"]
    upper_inner = line + top * profile
    lower_inner = np.maximum(line + max(bottom, top) * profile, upper_inner)
    thick = (1.0 - _T**2) ** 0.6 * (1.0 - 0.4 * press) * (1.0 + 0.5 * pucker + 0.3 * funnel)
    bow = 1.0 - 0.3 * np.exp(-((_T / 0.18) ** 2))  # Cupid's bow: a dip in the upper lip's middle
    upper_outer = upper_inner - 0.05 * (1.0 - 0.85 * p["mouthRollUpper"]) * thick * bow
    lower_outer = lower_inner + 0.06 * (1.0 - 0.85 * p["mouthRollLower"]) * thick
    x_lower = x_upper + shift * (1.0 - _T**2)  # the corners stay put, the middle follows the jaw
    return MouthShape(x_upper, x_lower, upper_outer, upper_inner, lower_inner, lower_outer,
                      my + 0.012, my + drop - 0.008)  # fmt: skip


# ------------------------------------------------------------------------------------------------ drawing


class FaceRenderer:
    """Draws ARKit weights as a face: ``render(weights (K,)) -> uint8 (size, size, 3)``.

    ``names`` are the curve columns; they must be the 52 ARKit shapes (any order, any case), else
    ``FaceRigError``. The static parts (background, neck, ears) are drawn once and copied per frame.
    """

    def __init__(
        self, names: Sequence[str], size: int = 480, supersample: int = 2, palette: Palette | None = None
    ) -> None:
        rig = Rig(tuple(names))
        if not rig.is_arkit and sorted(n.lower() for n in names) != sorted(n.lower() for n in ARKIT_NAMES):
            raise FaceRigError(
                f"the 2D face needs the 52 ARKit blendshapes; this rig has {len(rig)} curves "
                f"({', '.join(rig.names[:4])}{', ...' if len(rig) > 4 else ''})"
            )
        if size < 32 or supersample < 1:
            raise ValueError(f"face size must be >= 32 px and supersample >= 1, got {size} and {supersample}")
        self.columns = {name: rig.index(name) for name in ARKIT_NAMES}
        self.size, self.supersample = size, supersample
        self.palette = palette or Palette()
        self._px = size * supersample / 2.0  # pixels per face unit
        self._background = self._static_layer()

    def _xy(self, points: Sequence[Point]) -> list[Point]:
        px = self._px
        return [(px * (1.0 + x), px * (1.0 + y)) for x, y in points]

    def _static_layer(self) -> Image.Image:
        side = self.size * self.supersample
        image = Image.new("RGB", (side, side), self.palette.background)
        draw = ImageDraw.Draw(image)
        draw.polygon(self._xy([(-0.3, 0.3), (0.3, 0.3), (0.36, 1.0), (-0.36, 1.0)]), fill=self.palette.shade)
        for sx in (-1.0, 1.0):
            draw.polygon(self._xy(_ellipse(sx * 0.64, -0.08, 0.09, 0.16, 0, 2 * np.pi, 20)),
                         fill=self.palette.shade)  # fmt: skip
        return image

    def render_image(self, weights: np.ndarray) -> Image.Image:
        """The frame for one row of weights ``(K,)`` as a Pillow RGB image of ``size`` x ``size``."""
        weights = np.asarray(weights)
        if weights.shape != (len(self.columns),):
            raise ValueError(
                f"face frame: expected weights of shape ({len(self.columns)},), got {weights.shape}"
            )
        pose = _Pose(weights, self.columns)
        image = self._background.copy()
        draw = ImageDraw.Draw(image)
        pal = self.palette
        draw.polygon(self._xy(head_outline(pose)), fill=pal.skin)
        draw.polygon(self._xy(hair_outline()), fill=pal.hair)
        for side, sx in SIDES:
            self._draw_eye(draw, eye_shape(pose, side, sx))
            draw.polygon(self._xy(brow_polygon(pose, side, sx)), fill=pal.brow)
            rise, puff = 0.04 * pose.side("cheekSquint", side), 0.03 * pose["cheekPuff"]
            self._oval(draw, (sx * (0.4 + puff), 0.14 - rise), 0.085 + puff, 0.055 + puff, pal.blush)
        self._draw_nose(draw, pose)
        self._draw_mouth(draw, mouth_shape(pose), pose["tongueOut"])
        if self.supersample > 1:
            image = image.reduce(self.supersample)  # box filter: the antialiasing
        return image

    def render(self, weights: np.ndarray) -> np.ndarray:
        """The frame for one row of weights ``(K,)``: uint8 RGB ``(size, size, 3)``."""
        return np.asarray(self.render_image(weights))

    def _oval(self, draw: ImageDraw.ImageDraw, centre: Point, rx: float, ry: float, fill: Color) -> None:
        (x0, y0), (x1, y1) = self._xy([(centre[0] - rx, centre[1] - ry), (centre[0] + rx, centre[1] + ry)])
        draw.ellipse((x0, y0, x1, y1), fill=fill)

    def _draw_eye(self, draw: ImageDraw.ImageDraw, eye: EyeShape) -> None:
        pal, px = self.palette, self._px
        upper = list(zip(eye.x.tolist(), eye.upper.tolist(), strict=True))
        lower = list(zip(eye.x.tolist(), eye.lower.tolist(), strict=True))
        draw.polygon(self._xy(upper + lower[::-1]), fill=pal.sclera)
        self._oval(draw, eye.iris, 0.055, 0.055, pal.iris)
        self._oval(draw, eye.iris, 0.025, 0.025, pal.pupil)
        # Skin-coloured lids drawn over the iris clip it to the eye opening without a mask.
        cy = eye.center[1]
        left, right = float(eye.x[0]) - 0.05, float(eye.x[-1]) + 0.05
        for lid, reach in ((upper, -0.16), (lower, 0.13)):
            box = [(right, cy), (right, cy + reach), (left, cy + reach), (left, cy)]
            draw.polygon(self._xy(lid + box), fill=pal.skin)
        draw.line(self._xy(upper), fill=pal.line, width=max(1, round(0.018 * px)), joint="curve")
        draw.line(self._xy(lower), fill=pal.shade, width=max(1, round(0.008 * px)), joint="curve")

    def _draw_nose(self, draw: ImageDraw.ImageDraw, pose: _Pose) -> None:
        pal = self.palette
        sneer = (pose["noseSneerLeft"] + pose["noseSneerRight"]) / 2
        y = 0.15 - 0.03 * sneer
        draw.polygon(self._xy([(0.0, -0.08), (0.07 + 0.02 * sneer, y), (-0.07 - 0.02 * sneer, y)]),
                     fill=pal.shade)  # fmt: skip
        for sx in (-1.0, 1.0):
            self._oval(draw, (sx * (0.04 + 0.01 * sneer), y - 0.005), 0.022, 0.014, pal.line)

    def _draw_mouth(self, draw: ImageDraw.ImageDraw, m: MouthShape, tongue_out: float) -> None:
        pal, px = self.palette, self._px

        def curve(xs: np.ndarray, ys: np.ndarray) -> list[Point]:
            return list(zip(xs.tolist(), ys.tolist(), strict=True))

        top, bottom = m.upper_inner, m.lower_inner
        x_mid = (m.x_upper + m.x_lower) / 2  # the opening's sides run between the two lips
        draw.polygon(self._xy(curve(m.x_upper, top) + curve(m.x_lower, bottom)[::-1]), fill=pal.cavity)
        # Teeth and tongue are bands inside the opening, clipped to it pointwise (the curves share _T).
        upper_teeth = np.clip(np.full_like(top, m.upper_teeth), top, bottom)
        lower_teeth = np.clip(np.full_like(top, m.lower_teeth), top, bottom)
        tongue_top = np.clip(bottom - 0.05 * (1.0 - _T**2), top, bottom)
        for y0, y1, fill in ((top, upper_teeth, pal.teeth), (tongue_top, bottom, pal.tongue),
                             (lower_teeth, bottom, pal.teeth)):  # fmt: skip
            draw.polygon(self._xy(curve(x_mid, y0) + curve(x_mid, y1)[::-1]), fill=fill)
        draw.polygon(self._xy(curve(m.x_upper, m.upper_outer) + curve(m.x_upper, top)[::-1]), fill=pal.lips)
        draw.polygon(
            self._xy(curve(m.x_lower, bottom) + curve(m.x_lower, m.lower_outer)[::-1]), fill=pal.lips
        )
        draw.line(
            self._xy(curve(m.x_upper, top)), fill=pal.line, width=max(1, round(0.01 * px)), joint="curve"
        )
        if tongue_out > 0.02:
            self._oval(draw, (float(m.x_lower[10]), float(bottom[10]) + 0.035 * tongue_out),
                       0.07, 0.05 * tongue_out + 0.01, pal.tongue)  # fmt: skip
