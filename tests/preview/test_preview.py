"""Previews: the 2D face responds to the ARKit weights, the MP4 and PNG are valid, marks are found."""

from __future__ import annotations

import argparse
import json
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import audio2blendshape.preview.make as preview_module
from audio2blendshape.cli.preview import register
from audio2blendshape.names import ARKIT_NAMES
from audio2blendshape.preview.face2d import FaceRenderer, FaceRigError, Palette
from audio2blendshape.preview.make import (
    PreviewError,
    most_active,
    plot_curves,
    preview,
    sidecar_info,
    write_video,
)

av = pytest.importorskip("av")

SIZE = 240  # small frames keep the tests fast; the geometry is resolution-independent
COL = {n: i for i, n in enumerate(ARKIT_NAMES)}
PAL = Palette()


def pose(**values: float) -> np.ndarray:
    """ARKit weights (52,); ``name=v`` sets one shape, a name without Left/Right sets both sides."""
    weights = np.zeros(len(ARKIT_NAMES), np.float32)
    for name, value in values.items():
        for column in [name] if name in COL else [name + "Left", name + "Right"]:
            weights[COL[column]] = value
    return weights


@pytest.fixture(scope="module")
def face() -> FaceRenderer:
    return FaceRenderer(ARKIT_NAMES, size=SIZE)


def near(image: np.ndarray, color: tuple[int, int, int], tol: int = 20) -> np.ndarray:
    """Boolean mask (H, W) of the pixels within ``tol`` of ``color`` on every channel."""
    return (np.abs(image.astype(int) - np.array(color)) <= tol).all(axis=-1)


def region(image: np.ndarray, x0: float, x1: float, y0: float, y1: float) -> np.ndarray:
    """A box of the frame in fractions of its size."""
    h, w = image.shape[:2]
    return image[round(y0 * h) : round(y1 * h), round(x0 * w) : round(x1 * w)]


def mouth(image: np.ndarray) -> np.ndarray:
    return region(image, 0.25, 0.75, 0.58, 0.92)


def lip_corner_rows(image: np.ndarray) -> tuple[float, float]:
    """Mean row of the lip pixels in the outer 15 % of the mouth's width: (image-left, image-right)."""
    rows, cols = np.nonzero(near(mouth(image), PAL.lips, 30))
    left, right = cols.min(), cols.max()
    band = 0.15 * (right - left)
    return float(rows[cols <= left + band].mean()), float(rows[cols >= right - band].mean())


def test_jaw_open_opens_the_mouth_and_mouth_close_holds_the_lips(face: FaceRenderer) -> None:
    shut, opened = face.render(pose()), face.render(pose(jawOpen=0.8))
    held = face.render(pose(jawOpen=0.8, mouthClose=0.8))
    dark = [int(near(mouth(img), PAL.cavity).sum()) for img in (shut, opened, held)]
    assert dark[0] < 5  # at rest the lips meet
    assert dark[1] > 40 + 20 * dark[0]  # an open jaw shows the dark inside of the mouth
    assert dark[2] < dark[1] / 5  # mouthClose keeps the lips together against the open jaw
    # The chin drops: skin reaches further down the centre column.
    column = SIZE // 2
    skin_rows = [np.nonzero(near(img[:, column - 2 : column + 3], PAL.skin, 6).all(axis=1))[0].max()
                 for img in (shut, opened)]  # fmt: skip
    assert skin_rows[1] > skin_rows[0] + 0.05 * SIZE


def test_blink_closes_each_eye_on_its_own_side(face: FaceRenderer) -> None:
    """The face is seen from the front: the character's left eye is on the image's right."""

    def sclera(image: np.ndarray) -> tuple[int, int]:
        eyes = region(image, 0.2, 0.8, 0.3, 0.5)
        white = near(eyes, PAL.sclera, 8)
        half = white.shape[1] // 2
        return int(white[:, :half].sum()), int(white[:, half:].sum())

    open_left, open_right = sclera(face.render(pose()))
    assert min(open_left, open_right) > 100
    assert sclera(face.render(pose(eyeBlink=1.0))) == (0, 0)
    image_left, image_right = sclera(face.render(pose(eyeBlinkLeft=1.0)))
    assert image_right == 0 and image_left == open_left
    wide = sclera(face.render(pose(eyeWide=1.0)))
    assert min(wide) > 1.2 * open_left


def test_smile_raises_the_corners_and_frown_lowers_them(face: FaceRenderer) -> None:
    rest = lip_corner_rows(face.render(pose()))
    smile = lip_corner_rows(face.render(pose(mouthSmile=1.0)))
    frown = lip_corner_rows(face.render(pose(mouthFrown=1.0)))
    assert all(s < r - 0.02 * SIZE for s, r in zip(smile, rest, strict=True))  # rows grow downwards
    assert all(f > r + 0.02 * SIZE for f, r in zip(frown, rest, strict=True))
    one_side = lip_corner_rows(face.render(pose(mouthSmileLeft=1.0)))
    assert one_side[1] < rest[1] - 0.02 * SIZE and abs(one_side[0] - rest[0]) < 0.01 * SIZE


def test_pucker_narrows_the_lips_and_stretch_widens_them(face: FaceRenderer) -> None:
    def width(image: np.ndarray) -> int:
        cols = np.nonzero(near(mouth(image), PAL.lips, 30).any(axis=0))[0]
        return int(cols.max() - cols.min())

    rest = width(face.render(pose()))
    assert width(face.render(pose(mouthPucker=1.0))) < 0.7 * rest
    assert width(face.render(pose(mouthFunnel=1.0))) < 0.85 * rest
    assert width(face.render(pose(mouthStretch=1.0))) > 1.2 * rest
    rolled = face.render(pose(mouthRollLower=1.0, mouthRollUpper=1.0))
    assert (
        near(mouth(rolled), PAL.lips, 30).sum() < 0.3 * near(mouth(face.render(pose())), PAL.lips, 30).sum()
    )


def test_gaze_moves_the_pupils_and_brows_move(face: FaceRenderer) -> None:
    def pupil_x(image: np.ndarray) -> float:
        return float(np.nonzero(near(region(image, 0.5, 0.8, 0.3, 0.5), PAL.pupil))[1].mean())

    def brow_top(image: np.ndarray) -> int:
        return int(np.nonzero(near(region(image, 0.5, 0.8, 0.2, 0.4), PAL.brow, 6).any(axis=1))[0].min())

    rest = face.render(pose())
    # The image-right eye is the character's left one: looking out moves it right, in moves it left.
    assert pupil_x(face.render(pose(eyeLookOutLeft=1.0))) > pupil_x(rest) + 0.02 * SIZE
    assert pupil_x(face.render(pose(eyeLookInLeft=1.0))) < pupil_x(rest) - 0.02 * SIZE
    assert brow_top(face.render(pose(browInnerUp=1.0, browOuterUp=1.0))) < brow_top(rest) - 0.02 * SIZE
    assert brow_top(face.render(pose(browDown=1.0))) > brow_top(rest)


def test_column_order_and_case_do_not_matter_and_other_rigs_are_refused() -> None:
    weights = pose(jawOpen=0.6, mouthSmileLeft=0.7, eyeBlinkRight=1.0)
    shuffled = [n[0].upper() + n[1:] for n in reversed(ARKIT_NAMES)]  # Live Link Face spelling
    a = FaceRenderer(ARKIT_NAMES, size=SIZE).render(weights)
    b = FaceRenderer(shuffled, size=SIZE).render(weights[::-1].copy())
    assert np.array_equal(a, b)
    with pytest.raises(FaceRigError, match="52 ARKit"):
        FaceRenderer(["jawOpen", "smile"])
    with pytest.raises(ValueError, match=r"\(52,\)"):
        FaceRenderer(ARKIT_NAMES, size=SIZE).render(np.zeros(51))


def test_rendering_is_fast_enough_for_realtime(face: FaceRenderer) -> None:
    renderer = FaceRenderer(ARKIT_NAMES, size=480)
    frames = np.random.default_rng(0).uniform(0.0, 0.6, size=(60, len(ARKIT_NAMES))).astype(np.float32)
    start = time.perf_counter()
    for row in frames:
        renderer.render(row)
    assert time.perf_counter() - start < 1.0  # 60 frames of 480x480 in under a second (~5x spare here)


@pytest.mark.parametrize(("video_codec", "audio_codec"), [("libx264", "aac"), ("mpeg4", "pcm_s16le")])
def test_mp4_decodes_with_the_right_frames_rate_and_audio(
    tmp_path: Path, face: FaceRenderer, monkeypatch: pytest.MonkeyPatch, video_codec: str, audio_codec: str
) -> None:
    """Both the preferred codecs and the fallbacks (for an FFmpeg build without them) make a valid MP4."""
    monkeypatch.setattr(preview_module, "VIDEO_CODECS", (video_codec,))
    monkeypatch.setattr(preview_module, "AUDIO_CODECS", (audio_codec,))
    fps, frames, rate = 30.0, 45, 16_000
    jaw = 0.5 + 0.5 * np.sin(np.linspace(0, 4 * np.pi, frames))
    weights = np.stack([pose(jawOpen=float(j), eyeBlink=float(i == 20)) for i, j in enumerate(jaw)])
    audio = (0.3 * np.sin(2 * np.pi * 220 * np.arange(int(frames / fps * rate)) / rate)).astype(np.float32)
    out = write_video(tmp_path / "clip.mp4", ARKIT_NAMES, fps, weights, audio, size=SIZE,
                      marks=[(0.0, 0.5, "m"), (0.5, 1.5, "ɑ")], caption="test")  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]  # the temp file was renamed
    with av.open(str(out)) as container:
        video, sound = container.streams.video[0], container.streams.audio[0]
        assert video.average_rate == 30 and (video.width, video.height) == (SIZE, SIZE)
        assert video.codec_context.name == {"libx264": "h264"}.get(video_codec, video_codec)
        assert sound.sample_rate == rate and sound.codec_context.name == audio_codec
        assert abs(float(sound.duration * sound.time_base) - frames / fps) <= 1 / fps
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == frames
    # Frame 20 (a blink at a half-open jaw) survives encoding close to what the renderer drew.
    error = np.abs(
        decoded[20][: SIZE * 3 // 4].astype(int) - face.render(weights[20])[: SIZE * 3 // 4]
    ).mean()
    assert error < 4.0


def test_video_refuses_other_rigs_and_bad_input(tmp_path: Path) -> None:
    audio = np.zeros(16_000, np.float32)
    with pytest.raises(PreviewError, match=r"rig.mp4.*ARKit.*\.png"):
        write_video(tmp_path / "rig.mp4", ["a", "b"], 30.0, np.zeros((30, 2)), audio)
    bad = np.zeros((30, 52), np.float32)
    bad[3, 5] = np.nan
    with pytest.raises(PreviewError, match=r"nan\.mp4.*NaN"):
        write_video(tmp_path / "nan.mp4", ARKIT_NAMES, 30.0, bad, audio)
    assert not list(tmp_path.iterdir())


def test_png_plot_is_a_valid_png_for_any_rig(tmp_path: Path) -> None:
    t = np.linspace(0, 1, 50)[:, None]
    weights = np.hstack([np.full((50, 1), 0.5), 0.4 * t, np.sin(6 * t) ** 2, 0.1 * t]).astype(np.float32)
    assert most_active(weights, 2).tolist() == [2, 1]
    out = plot_curves(tmp_path / "sub" / "plot.png", ["flat", "ramp", "wave", "small"], 50.0, weights,
                      marks=[(0.1, 0.3, "AA1"), (0.3, 0.35, "sil"), (0.4, 0.8, "word")], top=3)  # fmt: skip
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(out) as image:
        image.verify()
    with pytest.raises(PreviewError, match=r"bad\.png.*mark 0"):
        plot_curves(tmp_path / "bad.png", ["a"], 50.0, weights[:, :1], marks=[(0.5, 0.1, "x")])


def test_sidecar_marks_and_dataset_records(tmp_path: Path) -> None:
    clip = tmp_path / "clip.wav"
    (tmp_path / "clip.phonemes.json").write_text(
        json.dumps([[0.2, 0.3, "p"], {"start": 0, "end": 0.2, "symbol": "m"}])
    )
    (tmp_path / "clip.txt").write_text("mama\n")
    assert sidecar_info(clip) == ([(0.0, 0.2, "m"), (0.2, 0.3, "p")], "mama")
    assert sidecar_info(tmp_path / "other.wav") == ([], None)
    root = tmp_path / "data"
    (root / "meta").mkdir(parents=True)
    (root / "meta" / "u1.json").write_text(
        json.dumps({"id": "u1", "text": "hi", "phonemes": [[0, 0.1, "HH"]]})
    )
    assert sidecar_info(root / "audio" / "u1.wav") == ([(0.0, 0.1, "HH")], "hi")
    (tmp_path / "broken.phonemes.json").write_text("[[0, 1")
    with pytest.raises(PreviewError, match=r"broken\.phonemes\.json"):
        sidecar_info(tmp_path / "broken.wav")


class _FakeAnimator:
    """Stands in for the model: a jaw that opens and closes, with the Animator's interface."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names, self.source = names, "fake checkpoint"
        self.is_arkit = names == ARKIT_NAMES

    def animate(
        self, audio: Path, fps: float, idle: bool, seed: int, progress: bool
    ) -> types.SimpleNamespace:
        frames = int(0.5 * fps)
        weights = np.zeros((frames, len(self.names)), np.float32)
        weights[:, 0] = np.linspace(0, 1, frames)
        return types.SimpleNamespace(names=self.names, fps=fps, weights=weights, duration=0.5)


def test_preview_command_writes_png_and_mp4(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import soundfile

    names: list[tuple[str, ...]] = [ARKIT_NAMES]
    fake = types.ModuleType("audio2blendshape.runtime.animator")
    fake.Animator = types.SimpleNamespace(load=lambda path=None: _FakeAnimator(names[0]))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "audio2blendshape.runtime.animator", fake)
    clip = tmp_path / "clip.wav"
    soundfile.write(clip, np.zeros(8_000, np.float32), 16_000)
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    for out in ("c.png", "c.mp4"):
        args = parser.parse_args(
            ["preview", str(clip), "-o", str(tmp_path / out), "--fps", "24", "--size", "96"]
        )
        assert args.func(args) == 0 and (tmp_path / out).stat().st_size > 0
    with av.open(str(tmp_path / "c.mp4")) as container:
        assert container.streams.video[0].average_rate == 24 and container.streams.video[0].frames == 12
    with pytest.raises(PreviewError, match=r"c\.gif"):
        preview(clip, tmp_path / "c.gif")
    names[0] = ("a", "b")
    with pytest.raises(PreviewError, match=r"x\.mp4.*not ARKit"):
        preview(clip, tmp_path / "x.mp4")
    assert preview(clip, tmp_path / "x.png").is_file()  # any rig plots
