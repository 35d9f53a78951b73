"""Streaming: incremental features and the Streamer equal the offline path; timing, latency, faults, CLI."""

from __future__ import annotations

import argparse
import socket
import sys
import warnings
from dataclasses import replace
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import soundfile
import soxr
import torch

import audio2blendshape.cli.stream as stream_cli
import audio2blendshape.live.outputs as live_outputs
from audio2blendshape.audio.chunks import mic_chunks
from audio2blendshape.audio.mel import StreamingLogMel, log_mel
from audio2blendshape.models.features import log_mel_from_waveform
from audio2blendshape.models.frame import FrameConfig, FrameModel
from audio2blendshape.models.simplified import SimplifiedModel
from audio2blendshape.models.torch_backend import TorchPoseModel as TorchFrameModel
from audio2blendshape.names import ARKIT_NAMES
from audio2blendshape.runtime.animator import Animator
from audio2blendshape.runtime.frame_rate import frame_count
from audio2blendshape.runtime.idle import EYE_COLUMNS
from audio2blendshape.runtime.streamer import Streamer, StreamError, StreamFrames
from audio2blendshape.training.checkpoint import save_checkpoint
from audio2blendshape.training.config import Config

REPO = Path(__file__).resolve().parents[2]
TINY = FrameConfig(d_model=16, conv_layers=2, conv_kernel=3, d_attention=8, n_heads=2, window_left=3,
                   window_right=2, decoder_hidden=8, dropout=0.0)  # fmt: skip
TOLERANCE = 1e-4


def tiny_model(names: tuple[str, ...] = ARKIT_NAMES) -> FrameModel:
    torch.manual_seed(0)
    return FrameModel(len(names), TINY).eval()


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """3.4 s at 16 kHz: speech, digital silence, then quiet noise; not a multiple of 160 samples."""
    hello, _ = soundfile.read(REPO / "examples" / "hello.wav", dtype="float32")
    quiet = np.random.default_rng(1).normal(0, 1e-3, 7_777).astype(np.float32)
    return np.concatenate([hello[8_000:48_000], np.zeros(4_000, np.float32), quiet])


def run_stream(
    streamer: Streamer, audio: np.ndarray, seed: int, low_ms: float = 10, high_ms: float = 100
) -> tuple[list[StreamFrames], np.ndarray]:
    """Push ``audio`` in random chunks of low..high ms, then flush: (list of StreamFrames, weights (T, K))."""
    rng, rate = np.random.default_rng(seed), streamer.state.input_rate
    parts, start = [], 0
    while start < len(audio):
        size = int(rng.integers(round(rate * low_ms / 1000), round(rate * high_ms / 1000) + 1))
        parts.append(streamer.push(audio[start : start + size]))
        start += size
    parts.append(streamer.flush())
    index = np.concatenate([p.index for p in parts])
    assert np.array_equal(index, np.arange(len(index)))  # consecutive, each frame exactly once
    times = np.concatenate([p.times for p in parts])
    np.testing.assert_array_equal(times, index / streamer.fps)
    return parts, np.concatenate([p.weights for p in parts])


def test_streaming_log_mel_equals_whole_clip(speech: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    features, parts, start = StreamingLogMel(), [], 0
    while start < len(speech):
        size = int(rng.integers(0, 1_700))
        parts.append(features.push(speech[start : start + size]))
        start += size
    parts.append(features.flush())
    streamed = np.concatenate(parts)
    # The same numpy ops whatever the chunks (matmuls of other sizes may differ in the last bit).
    np.testing.assert_allclose(streamed, log_mel(speech), atol=1e-6, rtol=0)
    # torch's STFT (the training side's features) on the same samples: within float32 rounding.
    offline = log_mel_from_waveform(torch.from_numpy(speech)).numpy()
    assert streamed.shape == offline.shape == (len(speech) // 160, 80)
    np.testing.assert_allclose(streamed, offline, atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize(("fps", "names"), [(60.0, ARKIT_NAMES), (30.0, tuple(reversed(ARKIT_NAMES))),
                                           (200.0, ("a", "b", "c"))])  # fmt: skip
def test_streamer_equals_animate_at_16k(speech: np.ndarray, fps: float, names: tuple[str, ...]) -> None:
    model = tiny_model(names)
    offline = Animator(model, names).animate(speech, fps=fps, seed=7)
    _, streamed = run_stream(Streamer(TorchFrameModel(model, names), fps=fps, seed=7), speech, seed=int(fps))
    assert streamed.shape == offline.weights.shape == (frame_count(len(speech) / 16_000, fps), len(names))
    assert np.abs(streamed - offline.weights).max() <= TOLERANCE
    if names == ARKIT_NAMES:  # the idle layer ran: blinks happen in the streamed eye columns too
        assert streamed[:, EYE_COLUMNS].max() > 0.5


def test_streamer_resamples_other_rates_like_offline(speech: np.ndarray) -> None:
    rate = 44_100
    stereo = soxr.resample(speech, 16_000, rate)[:, None] * np.array([[0.5, 1.5]], np.float32)
    model = tiny_model()
    streamer = Streamer(TorchFrameModel(model, ARKIT_NAMES), sample_rate=rate, fps=60, seed=3)
    _, streamed = run_stream(streamer, stereo.astype(np.float32), seed=5)
    # The offline reference on the very samples a streaming soxr makes of this input...
    resampler = soxr.ResampleStream(rate, 16_000, 1, dtype="float32", quality="HQ")
    mono = stereo.astype(np.float32).mean(axis=1)
    same_stream = np.concatenate([resampler.resample_chunk(mono[:12_345]),
                                  resampler.resample_chunk(mono[12_345:]),
                                  resampler.resample_chunk(np.zeros(0, np.float32), last=True)])  # fmt: skip
    animator = Animator(model, ARKIT_NAMES)
    assert np.abs(streamed - animator.animate(same_stream, fps=60, seed=3).weights).max() <= TOLERANCE
    # ...which is also what offline resampling (soxr's one-shot HQ) gives: animate at 44.1 kHz directly.
    direct = animator.animate(stereo.astype(np.float32), fps=60, seed=3, sample_rate=rate).weights
    assert np.abs(streamed - direct).max() <= TOLERANCE


def test_frames_come_out_as_soon_as_their_audio_has_arrived(speech: np.ndarray) -> None:
    model = tiny_model()
    streamer = Streamer(TorchFrameModel(model, ARKIT_NAMES), fps=60)
    latency = streamer.latency(0.010)
    assert (latency.lookahead_s, latency.alignment_s, latency.resampler_s) == (0.0575, 0.02, 0.0)
    # Frame at t needs the first step after t; step s (at (2s + 0.5) / 100 s) needs mel frames up to
    # 2 (s + 2) + 1, whose window ends 200 samples after its centre.
    step_times = (np.arange(400) * 2 + 0.5) / 100
    emitted_at = {}
    for pushes in range(1, len(speech) // 160 + 1):
        frames = streamer.push(speech[(pushes - 1) * 160 : pushes * 160])
        emitted_at.update(dict.fromkeys(frames.index.tolist(), pushes * 160))
    for k, samples in emitted_at.items():
        after = int(np.searchsorted(step_times, k / 60, side="right"))
        needed = 160 * (2 * (after + 2) + 1) + 200
        assert samples - 160 < needed <= samples, k  # not a chunk earlier, not a chunk later
        assert samples / 16_000 - k / 60 <= latency.total_s + 1e-9
    assert len(emitted_at) > 150


def test_latency_counts_the_resampler() -> None:
    latency = Streamer(TorchFrameModel(tiny_model(), ARKIT_NAMES), sample_rate=22_050).latency(0.02)
    assert 0.0 < latency.resampler_s < 0.06
    assert latency.total_s == pytest.approx(0.0575 + 0.02 + 0.02 + latency.resampler_s)


@pytest.mark.parametrize("rate", [44_100, 48_000])
def test_native_rates_need_no_resampler(rate: int) -> None:
    # 44.1/48 kHz are featurised at their own rate: no soxr buffering, the same look-ahead as 16 kHz.
    latency = Streamer(TorchFrameModel(tiny_model(), ARKIT_NAMES), sample_rate=rate).latency(0.01)
    assert latency.resampler_s == 0.0
    assert latency.lookahead_s == pytest.approx(0.0575, abs=1e-4)  # 44.1 kHz's window is 1102 samples
    assert latency.total_s == pytest.approx(0.0575 + 0.02 + 0.01, abs=1e-4)


@pytest.mark.parametrize("rate", [44_100, 48_000])
def test_native_rate_stream_equals_offline(speech: np.ndarray, rate: int) -> None:
    model = TorchFrameModel(tiny_model(), ARKIT_NAMES)
    audio = soxr.resample(speech[:32_000], 16_000, rate).astype(np.float32)
    offline = Animator(model).animate(audio, sample_rate=rate, chunk_seconds=0.7)
    streamer = Streamer(model, sample_rate=rate)
    chunk = rate // 100
    parts = [streamer.push(audio[i : i + chunk]) for i in range(0, len(audio), chunk)] + [streamer.flush()]
    streamed = np.concatenate([p.weights for p in parts])
    assert streamed.shape == offline.weights.shape
    np.testing.assert_allclose(streamed, offline.weights, atol=1e-4)


def test_faults_keep_the_timing(speech: np.ndarray, caplog: pytest.LogCaptureFixture) -> None:
    model = TorchFrameModel(tiny_model(), ARKIT_NAMES)
    clip = speech[:16_000].copy()
    broken = clip.copy()
    broken[3_200:3_300] = np.nan
    broken[9_000] = np.inf
    streamer = Streamer(model, seed=1)
    parts = [streamer.push(broken[:4_000]), streamer.push(np.zeros(0, np.float32)),
             streamer.push(broken[4_000:]), streamer.flush()]  # fmt: skip
    assert len(parts[1]) == 0 and streamer.state.nonfinite_samples == 101
    assert "NaN or infinite" in caplog.text and "0.000 s" in caplog.text
    zeroed = np.nan_to_num(clip * np.isfinite(broken), nan=0.0)
    expected = Animator(model.module, ARKIT_NAMES).animate(zeroed, fps=60, seed=1).weights
    assert np.abs(np.concatenate([p.weights for p in parts]) - expected).max() <= TOLERANCE
    strict = Streamer(model, on_nonfinite="raise")
    strict.push(clip[:1_600])
    with pytest.raises(StreamError, match=r"chunk at 0\.100 s: 100 NaN"):
        strict.push(broken[3_200:3_400])
    with pytest.raises(StreamError, match=r"changed from 16000 to 48000 Hz at 0\.100 s"):
        strict.push(clip[:100], sample_rate=48_000)
    with pytest.raises(StreamError, match=r"expected \(n,\) or \(n, channels\)"):
        strict.push(np.zeros((2, 2, 2), np.float32))
    strict.flush()
    with pytest.raises(StreamError, match="after flush"):
        strict.push(clip[:100])


def test_stereo_inf_and_minus_inf_are_reported_not_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    """Their mean is NaN: counted and logged like any non-finite sample, without numpy's RuntimeWarning."""
    stereo = np.zeros((1_600, 2), np.float32)
    stereo[5] = [np.inf, -np.inf]
    streamer = Streamer(TorchFrameModel(tiny_model(), ARKIT_NAMES), seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        streamer.push(stereo)
    assert streamer.state.nonfinite_samples == 1 and "NaN or infinite" in caplog.text


def test_integer_pcm_and_tiny_streams() -> None:
    model = TorchFrameModel(tiny_model(), ARKIT_NAMES)
    pcm = (np.random.default_rng(0).normal(0, 0.1, 8_000) * 32768).clip(-32768, 32767).astype(np.int16)
    as_int, as_float = Streamer(model), Streamer(model)
    a = [as_int.push(pcm), as_int.flush()]
    b = [as_float.push(pcm.astype(np.float32) / 32768), as_float.flush()]
    np.testing.assert_array_equal(
        np.concatenate([p.weights for p in a]), np.concatenate([p.weights for p in b])
    )
    empty = Streamer(model)
    assert len(empty.flush()) == 0 and len(empty.flush()) == 0  # nothing pushed: nothing out, no error
    with pytest.raises(TypeError, match="FrameModel"):
        Streamer(TorchFrameModel(SimplifiedModel(52), ARKIT_NAMES))


def test_frame_sender_sends_each_frame_at_time_plus_latency() -> None:
    now = [100.0]
    sent: list[tuple[float, float]] = []

    class Outputs:
        def send(self, time_s: float, values: np.ndarray, names: tuple[str, ...]) -> None:
            sent.append((time_s, now[0]))

    def sleep(seconds: float) -> None:
        now[0] += seconds

    sender = stream_cli.FrameSender(Outputs(), ("a",), 0.08, clock=lambda: now[0], sleep=sleep)  # type: ignore[arg-type]
    times = np.arange(5) / 60
    sender.add(StreamFrames(np.arange(5), times, np.zeros((5, 1), np.float32), 0.0))
    assert sent == []  # nothing is due before its deadline
    sender.drain()
    assert [t for t, _ in sent] == pytest.approx(times.tolist())
    assert [at - 100.0 for _, at in sent] == pytest.approx((times + 0.08).tolist())
    assert sender.report.late == 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    stream_cli.register(parser.add_subparsers(dest="command", required=True))
    return parser


def test_stream_command_sends_every_frame_to_vmc(
    tmp_path: Path, speech: np.ndarray, capsys: pytest.CaptureFixture[str]
) -> None:
    config = replace(Config(), model=replace(Config().model, kind="frame"), frame=TINY)
    checkpoint = save_checkpoint(tmp_path / "tiny.safetensors", tiny_model(), config, ARKIT_NAMES, 1)
    clip = tmp_path / "clip.wav"
    soundfile.write(clip, soxr.resample(speech[:8_000], 16_000, 22_050), 22_050)  # 0.5 s at 22.05 kHz
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(2.0)
    try:
        for extra in ([], ["--realtime"]):
            port = receiver.getsockname()[1]
            command = ["stream", str(clip), "--vmc", f"127.0.0.1:{port}", "--checkpoint", str(checkpoint)]
            args = _parser().parse_args([*command, "--chunk-ms", "10", *extra])
            assert args.func(args) == 0
            datagrams = [receiver.recv(65_536) for _ in range(30)]  # floor(0.5 s * 60 fps)
            assert all(d.startswith(b"#bundle") for d in datagrams)
            report = capsys.readouterr().out
            assert "30 frames" in report and ("latency" in report) == bool(extra)
    finally:
        receiver.close()
    with pytest.raises(ValueError, match="nothing to stream to"):
        args = _parser().parse_args(["stream", str(clip)])
        args.func(args)


def test_mic_without_sounddevice_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sounddevice", None)
    with pytest.raises(ValueError, match="sounddevice"):
        mic_chunks(16_000, 20, None, lambda: None)  # at the call, not at the first chunk
    opened: list[object] = []
    monkeypatch.setattr(live_outputs, "open_live_outputs", lambda *a, **k: opened.append(a))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    args = _parser().parse_args(["stream", "--mic", "--ws", str(port)])
    with pytest.raises(ValueError, match="sounddevice"):
        args.func(args)
    assert opened == []  # the error came before any output (here a WebSocket server) was started


class _FakeInputStream:
    """sounddevice.InputStream as the CLI uses it: opened at construction, capturing from ``start()``."""

    opened: ClassVar[list[_FakeInputStream]] = []

    def __init__(self, samplerate: int, blocksize: int, callback: object, **_: object) -> None:
        self.events: list[str] = []
        self.blocksize, self.callback = blocksize, callback
        _FakeInputStream.opened.append(self)

    def start(self) -> None:
        self.events.append("start")
        for _ in range(20):  # 20 chunks of silence, as a quiet room gives
            self.callback(np.zeros((self.blocksize, 1), np.float32), self.blocksize, None, None)  # type: ignore[operator]

    def close(self) -> None:
        self.events.append("close")


def _fake_sounddevice(monkeypatch: pytest.MonkeyPatch) -> list[_FakeInputStream]:
    module = argparse.Namespace(InputStream=_FakeInputStream)
    monkeypatch.setitem(sys.modules, "sounddevice", module)
    monkeypatch.setattr(_FakeInputStream, "opened", [])
    return _FakeInputStream.opened


def test_mic_is_released_when_a_later_startup_step_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    opened = _fake_sounddevice(monkeypatch)

    def port_taken(*args: object, **kwargs: object) -> None:
        raise OSError("address already in use")

    monkeypatch.setattr(live_outputs, "open_live_outputs", port_taken)
    args = _parser().parse_args(["stream", "--mic", "--vmc", "127.0.0.1:9"])
    with pytest.raises(OSError, match="already in use"):
        args.func(args)
    assert [stream.events for stream in opened] == [["close"]]  # opened, never started, closed once


def test_mic_stream_starts_capture_and_closes_the_device_once(monkeypatch: pytest.MonkeyPatch) -> None:
    opened = _fake_sounddevice(monkeypatch)
    args = _parser().parse_args(["stream", "--mic", "--vmc", "127.0.0.1:9", "--seconds", "0.1"])
    assert args.func(args) == 0
    assert [stream.events for stream in opened] == [["start", "close"]]


def test_file_chunks_release_the_file_unread_or_read(tmp_path: Path) -> None:
    from audio2blendshape.audio.chunks import file_chunks

    path = tmp_path / "tone.wav"
    soundfile.write(path, np.zeros(1600, np.float32), 16_000)
    fds = Path("/proc/self/fd")
    if not fds.is_dir():
        pytest.skip("needs /proc/self/fd (Linux) to see which files the process holds open")

    def held() -> int:
        return sum(1 for fd in fds.iterdir() if fd.resolve() == path.resolve())

    unread = file_chunks(str(path), 20)
    assert unread.sample_rate == 16_000 and held() == 1
    unread.close()  # a startup error before the first chunk
    assert held() == 0 and list(unread) == []
    chunks = file_chunks(str(path), 20)
    blocks = list(chunks)
    assert sum(len(b) for b in blocks) == 1600 and all(b.shape[1] == 1 for b in blocks)
    assert held() == 0 and list(chunks) == []  # closed at its end; asking again gives nothing
