import io
import logging
import multiprocessing
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile
import soxr
import torch
from conftest import deadline
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audio2blendshape.audio import mel
from audio2blendshape.audio.constants import FRAMES_PER_SECOND, N_FFT, N_MELS, SAMPLE_RATE
from audio2blendshape.audio.decode import AudioError, load_audio, require_signal
from audio2blendshape.audio.mel import log_mel
from audio2blendshape.audio.sample_stream import open_stream
from audio2blendshape.models.features import log_mel_spectrogram, mel_filters


def _tone(freq: float, seconds: float, rate: int = SAMPLE_RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_three_seconds_give_the_seeds_300_frames():
    mel = log_mel_spectrogram(_tone(440, 3.0))
    assert mel.shape == (300, N_MELS) and FRAMES_PER_SECOND == 100
    assert torch.isfinite(mel).all()


def test_path_array_and_tensor_give_the_same_features(tmp_path: Path):
    audio = _tone(300, 1.0) + _tone(1200, 1.0)
    path = tmp_path / "a.wav"
    soundfile.write(path, audio, SAMPLE_RATE, subtype="FLOAT")
    from_path = log_mel_spectrogram(path)
    from_array = log_mel_spectrogram(audio)
    from_tensor = log_mel_spectrogram(torch.from_numpy(audio))
    assert torch.equal(from_path, from_array) and torch.equal(from_array, from_tensor)


def test_stereo_44k_file_is_downmixed_and_resampled(tmp_path: Path):
    left, right = _tone(500, 1.0, 44_100), _tone(500, 1.0, 44_100)
    path = tmp_path / "stereo.flac"
    soundfile.write(path, np.stack([left, right], 1), 44_100)
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - SAMPLE_RATE) <= 1
    spectrum = np.abs(np.fft.rfft(audio))
    assert abs(np.argmax(spectrum) * SAMPLE_RATE / len(audio) - 500) < 3


@pytest.mark.parametrize("fmt", ["OGG", "MP3"])
def test_compressed_formats_load(tmp_path: Path, fmt: str):
    path = tmp_path / f"a.{fmt.lower()}"
    soundfile.write(path, _tone(440, 1.0), SAMPLE_RATE, format=fmt)
    assert abs(len(load_audio(path)) - SAMPLE_RATE) < 2000  # MP3 adds encoder padding


@pytest.mark.parametrize("rate", [44_100, 48_000])
def test_native_rate_features_match_the_resampled_ones(rate: int) -> None:
    # Speech-like content below 8 kHz plus a wideband noise floor that reaches past it, as a microphone gives.
    rng = np.random.default_rng(1)
    t = np.arange(2 * rate) / rate
    tones = sum(
        np.sin(2 * np.pi * f * t * (1 + 0.2 * t)) / (k + 1) for k, f in enumerate([180, 900, 2500, 6900])
    )
    audio = (0.1 * tones * (np.sin(2 * np.pi * 3 * t) > 0) + 0.003 * rng.standard_normal(len(t))).astype(
        np.float32
    )
    native = log_mel(audio, rate)
    resampled = log_mel(soxr.resample(audio, rate, SAMPLE_RATE, quality="HQ").astype(np.float32))
    assert native.shape == resampled.shape == (200, N_MELS)
    difference = np.abs(native - resampled)
    assert difference.mean() < 0.002  # speech spans about 1.5 units
    assert difference[:, -1].mean() < 0.02  # the top band, where the resampler rolls off, included


def test_a_48k_file_streams_at_its_own_rate(tmp_path: Path) -> None:
    path = tmp_path / "mic.wav"
    soundfile.write(path, np.zeros(48_000, np.float32), 48_000)
    stream = open_stream(path, SAMPLE_RATE)
    assert stream.spec.rate == 48_000 and stream.spec.hop == 480 and stream.spec.n_fft == 1200
    assert len(stream.take(0, 10**9)) == 48_000
    assert open_stream(np.zeros(22_050, np.float32), 22_050).spec.rate == SAMPLE_RATE  # 220.5-sample hops


def test_tone_energy_lands_in_the_right_mel_bin():
    filters = mel_filters()
    assert filters.shape == (N_MELS, N_FFT // 2 + 1)
    mel = log_mel_spectrogram(_tone(1000, 1.0))
    fft_bin = round(1000 * N_FFT / SAMPLE_RATE)
    assert int(mel[50].argmax()) == int(filters[:, fft_bin].argmax())


def test_streaming_friendly_features_do_not_depend_on_far_audio():
    # Whisper normalises by the clip's maximum; we must not, so a loud burst 2 s away changes nothing.
    quiet = _tone(300, 4.0) * 0.01
    loud = quiet.copy()
    loud[3 * SAMPLE_RATE :] *= 100
    assert torch.equal(log_mel_spectrogram(quiet)[:150], log_mel_spectrogram(loud)[:150])


def test_silence_is_finite_but_rejected_where_speech_is_required():
    mel = log_mel_spectrogram(np.zeros(SAMPLE_RATE, dtype=np.float32))
    assert torch.isfinite(mel).all() and mel.unique().numel() == 1
    with pytest.raises(AudioError, match="silent"):
        require_signal(np.zeros(100, dtype=np.float32), "clip.wav")


def test_bad_input_gets_a_clear_error(tmp_path: Path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(AudioError, match=r"empty\.wav: the file is empty"):
        load_audio(empty)
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio\n")
    with pytest.raises(AudioError, match=r"notes\.wav: not a readable audio file"):
        load_audio(text)
    with pytest.raises(AudioError, match="no such audio file"):
        load_audio(tmp_path / "missing.wav")
    noisy = _tone(200, 1.0)
    noisy[8000] = np.nan
    with pytest.raises(AudioError, match=r"1 samples are NaN.*0\.500 s"):
        log_mel_spectrogram(noisy)
    nan_file = tmp_path / "nan.wav"
    soundfile.write(nan_file, noisy, SAMPLE_RATE, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"nan\.wav: 1 samples are NaN"):
        load_audio(nan_file)
    with pytest.raises(AudioError, match="shorter than one"):
        log_mel_spectrogram(np.ones(100, dtype=np.float32))


# --- untrusted files: random bytes, damaged headers, files cut short ---

FUZZ_COUNTS: dict[str, int] = {}


def _encoded(fmt: str, subtype: str | None = None, rate: int = SAMPLE_RATE, seconds: float = 0.5) -> bytes:
    handle = io.BytesIO()
    soundfile.write(handle, _tone(300, seconds, rate), rate, format=fmt, subtype=subtype)
    return handle.getvalue()


SEEDS = {"wav": _encoded("WAV", "PCM_16"), "float.wav": _encoded("WAV", "FLOAT", 44_100),
         "flac": _encoded("FLAC"), "ogg": _encoded("OGG"), "mp3": _encoded("MP3"),
         "aiff": _encoded("AIFF"), "au": _encoded("AU")}  # fmt: skip


def _decode_everything(path: Path) -> None:
    """Both readers, with the documented error as the only way out; what they return must be usable."""
    for read in (load_audio, lambda p: open_stream(p, SAMPLE_RATE).take(0, 10**9)):
        with deadline(10):
            try:
                samples = read(path)
            except AudioError as error:
                assert path.name in str(error)
                continue
        assert samples.dtype == np.float32 and samples.ndim == 1 and np.isfinite(samples).all()
        # The seeds hold 0.5 s: a damaged header may shorten or stretch that, never into minutes.
        assert len(samples) <= 30 * SAMPLE_RATE or path.stat().st_size > 100_000


# Header fields a damaged file gets wrong: WAV sizes, channels, rate, byte rate and bits per sample; FLAC's
# STREAMINFO rate, channels and 36-bit sample count, drawn more often. Small values and all ones matter.
FIELDS = {"wav": (4, 22, 24, 28, 34, 40), "float.wav": (4, 22, 24, 28, 34, 40), "flac": (18, 21, 22)}
BYTE_EDITS = st.lists(st.tuples(st.integers(0, 120), st.integers(0, 255)), max_size=8)  # mostly the header
SUFFIXES = st.sampled_from([".wav", ".mp3", ".flac", ".ogg"])
FIELD_VALUES = st.one_of(st.integers(0, 2**32 - 1), st.integers(0, 64), st.just(2**32 - 1))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.sampled_from([*sorted(SEEDS), *FIELDS, *FIELDS]), edits=BYTE_EDITS, draw=st.data(),
       cut=st.just(1.0) | st.floats(0, 1), suffix=SUFFIXES)  # fmt: skip
def test_damaged_and_truncated_files_give_audio_errors(
    tmp_path: Path, seed: str, edits: list[tuple[int, int]], draw: st.DataObject, cut: float, suffix: str
) -> None:
    data = bytearray(SEEDS[seed])
    for offset, value in edits:
        data[offset % len(data)] = value
    if seed in FIELDS and draw.draw(st.booleans()):
        offset = draw.draw(st.sampled_from(FIELDS[seed]))
        data[offset : offset + 4] = draw.draw(FIELD_VALUES).to_bytes(4, "little" if "wav" in seed else "big")
    path = tmp_path / f"x{suffix}"
    path.write_bytes(bytes(data[: max(1, round(cut * len(data)))]))
    _decode_everything(path)
    FUZZ_COUNTS["damaged audio files"] = FUZZ_COUNTS.get("damaged audio files", 0) + 1


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(min_size=1, max_size=4096), suffix=SUFFIXES)
def test_random_bytes_give_audio_errors(tmp_path: Path, data: bytes, suffix: str) -> None:
    path = tmp_path / f"x{suffix}"
    path.write_bytes(data)
    _decode_everything(path)
    FUZZ_COUNTS["random audio bytes"] = FUZZ_COUNTS.get("random audio bytes", 0) + 1


def test_fuzz_counts() -> None:
    print(f"\naudio fuzzing examples: {FUZZ_COUNTS}")
    assert not FUZZ_COUNTS or min(FUZZ_COUNTS.values()) >= 20


def test_random_bytes_named_mp3_say_what_is_wrong(tmp_path: Path) -> None:
    path = tmp_path / "x.mp3"
    path.write_bytes(np.random.default_rng(0).bytes(4000))
    for read in (load_audio, lambda p: open_stream(p, SAMPLE_RATE)):
        with pytest.raises(AudioError) as caught:
            read(path)
        message = str(caught.value)
        assert message.startswith(f"{path}: not a readable audio file (no audio format recognised")
        assert "does not exist" not in message and "pipe" not in message


def test_wav_cut_short_is_animated_over_what_is_there_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    whole = tmp_path / "whole.wav"
    soundfile.write(whole, _tone(300, 10.0), SAMPLE_RATE, subtype="PCM_16")
    path = tmp_path / "x.wav"
    path.write_bytes(whole.read_bytes()[: 44 + 2 * 77_600])  # the header, then 4.85 s of samples
    with caplog.at_level(logging.WARNING, logger="audio2blendshape.audio.decode"):
        assert len(load_audio(path)) == 77_600
        stream = open_stream(path, SAMPLE_RATE)
        assert len(stream.take(0, 10**9)) == 77_600 and stream.total == 77_600
    expected = f"{path}: the header promises 10.00 s but the file holds 4.85 s (5.15 s missing); "
    assert [r.getMessage() for r in caplog.records] == [
        expected + "reading the 4.85 s present",
        expected + "animating the 4.85 s present",
    ]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="audio2blendshape.audio.decode"):
        load_audio(whole)  # a whole file says nothing
    assert not caplog.records


def test_damaged_headers_cannot_blow_up_memory(tmp_path: Path) -> None:
    wav = bytearray(SEEDS["wav"])
    wav[24:28] = (1).to_bytes(4, "little")  # 1 Hz: 0.5 s would resample to 2 hours
    (tmp_path / "slow.wav").write_bytes(bytes(wav))
    with pytest.raises(AudioError, match=r"slow\.wav: the header's sample rate of 1 Hz is not audio"):
        load_audio(tmp_path / "slow.wav")
    flac = bytearray(SEEDS["flac"])
    flac[21] |= 0x0F  # STREAMINFO's total sample count: 2**36 - 1 (a day and more at 16 kHz)
    flac[22:26] = b"\xff\xff\xff\xff"
    (tmp_path / "long.flac").write_bytes(bytes(flac))
    assert soundfile.info(str(tmp_path / "long.flac")).frames == 2**36 - 1
    _decode_everything(tmp_path / "long.flac")  # an AudioError, not a MemoryError for 256 GiB


# --- docs/errors.md: its audio rows, built here, get the messages the table shows ---


def _raises(tmp: Path, name: str, content: bytes | str | None) -> str:
    path = tmp / name
    if content is not None:
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    with pytest.raises(AudioError) as caught:
        load_audio(path)
    return str(caught.value)


def _warned(tmp: Path, name: str, content: bytes, streamed: bool = False) -> str:
    """The warnings reading the file logs: through ``load_audio``, or streamed as ``Animator`` reads it."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("audio2blendshape.audio")
    logger.addHandler(handler)
    try:
        (tmp / name).write_bytes(content)
        if streamed:
            open_stream(tmp / name, SAMPLE_RATE).take(0, 10**9)
        else:
            load_audio(tmp / name)
    finally:
        logger.removeHandler(handler)
    return "\n".join(record.getMessage() for record in records)


def _sound(seconds: float = 1.0, fmt: str = "WAV", subtype: str = "PCM_16", rate_field: int = 0) -> bytes:
    samples = _tone(300, seconds)
    if subtype == "FLOAT":
        samples[8000] = np.nan
    handle = io.BytesIO()
    soundfile.write(handle, samples, SAMPLE_RATE, format=fmt, subtype=subtype)
    data = bytearray(handle.getvalue())
    if rate_field:
        data[24:28] = rate_field.to_bytes(4, "little")
    return bytes(data)


def _mp3_with_a_damaged_frame(seconds: float = 3.0, frame: int = 60) -> bytes:
    """An MP3 whose ``frame``-th frame keeps its header and loses its data."""
    import av

    data = bytearray(_sound(seconds, "MP3", "MPEG_LAYER_III"))
    with av.open(io.BytesIO(bytes(data))) as container:
        packets = [p for p in container.demux(container.streams.audio[0]) if p.size]
        offset, size = int(packets[frame].pos or 0), packets[frame].size
    data[offset + 4 : offset + size] = b"\xff" * (size - 4)
    return bytes(data)


def _mp3_cut_in_half(seconds: float = 4.0) -> bytes:
    whole = _sound(seconds, "MP3", "MPEG_LAYER_III")
    return whole[: len(whole) // 2]


AUDIO_CASES: dict[str, Callable[[Path], str]] = {
    "audio-missing": lambda t: _raises(t, "x.wav", None),
    "audio-empty": lambda t: _raises(t, "x.wav", b""),
    "audio-random-mp3": lambda t: _raises(t, "x.mp3", np.random.default_rng(0).bytes(4000)),
    "audio-text": lambda t: _raises(t, "x.wav", "this is not audio\n"),
    "audio-no-data-chunk": lambda t: _raises(t, "x.wav", _sound()[:36]),
    "audio-header-only": lambda t: _raises(t, "x.wav", _sound()[:44]),
    "audio-rate-1hz": lambda t: _raises(t, "x.wav", _sound(rate_field=1)),
    "audio-cut-short": lambda t: _warned(t, "x.wav", _sound(10.0)[: 44 + 2 * 77_600]),
    "audio-mp3-cut-short": lambda t: _warned(t, "x.mp3", _mp3_cut_in_half(), True),
    "audio-mp3-damaged-frame": lambda t: _warned(t, "x.mp3", _mp3_with_a_damaged_frame(), True),
    "audio-flac-cut-short": lambda t: _raises(t, "x.flac", _sound(3.0, "FLAC")[:3000]),
    "audio-nan": lambda t: _raises(t, "x.wav", _sound(subtype="FLOAT")),
}


def _documented_audio_rows() -> list[tuple[str, str]]:
    """(case id, message) of the audio rows of docs/errors.md; test_untrusted_input.py checks the rest."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "errors.md").read_text(encoding="utf-8")
    return re.findall(r"^\| `(audio-[a-z0-9-]+)` \|.*\| `([^`]+)` \|$", text, flags=re.MULTILINE)


@pytest.mark.parametrize(("case", "message"), _documented_audio_rows())
def test_error_table_audio_rows(tmp_path: Path, case: str, message: str) -> None:
    assert message in AUDIO_CASES[case](tmp_path)


def test_error_table_lists_every_audio_case() -> None:
    assert sorted(case for case, _ in _documented_audio_rows()) == sorted(AUDIO_CASES)


def test_long_blocks_are_featurised_on_two_threads_with_the_streaming_result(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(3)
    seconds = np.arange(8 * 16_000) / 16_000
    audio = (0.3 * np.sin(2 * np.pi * 220 * seconds) + 0.05 * rng.standard_normal(len(seconds))).astype(
        np.float32
    )
    threads: list[str] = []
    original = mel._window_features

    def spy(windows: np.ndarray, spec: mel.MelSpec) -> np.ndarray:
        threads.append(threading.current_thread().name)
        return original(windows, spec)

    monkeypatch.setattr(mel, "_window_features", spy)
    whole = mel.log_mel(audio)  # 800 frames: over PARALLEL_FRAMES
    if (os.cpu_count() or 1) > 1:
        assert len(threads) == 2 and all(name.startswith("log-mel") for name in threads)
    stream, parts = mel.StreamingLogMel(), []
    for start in range(0, len(audio), 1_000):  # small blocks: one thread
        parts.append(stream.push(audio[start : start + 1_000]))
    parts.append(stream.flush())
    np.testing.assert_allclose(np.concatenate(parts), whole, atol=1e-6, rtol=0)


def test_a_forked_child_featurises_long_blocks_too() -> None:
    long_block = np.random.default_rng(4).standard_normal(8 * 16_000).astype(np.float32)
    parent = mel.log_mel(long_block)  # the parent's feature threads exist now
    context = multiprocessing.get_context("fork")
    with deadline(30), context.Pool(1) as pool:  # a child with the parent's pool object but no threads
        child = pool.apply(mel.log_mel, (long_block,))
    np.testing.assert_array_equal(child, parent)


@pytest.mark.parametrize("rate", [SAMPLE_RATE, 48_000])
def test_blocked_features_are_the_one_shot_formula(rate: int) -> None:
    # The scratch-array blocks (mel.FEATURE_BLOCK) compute the formula applied to all windows at once; only
    # the mel matmul's rounding may differ (BLAS sums a block of rows in its own order): one float32 ulp.
    spec = mel.mel_spec(rate)
    samples = spec.hop * (3 * mel.FEATURE_BLOCK + 17)
    block = np.random.default_rng(5).standard_normal(samples).astype(np.float32)
    windows = np.lib.stride_tricks.sliding_window_view(block, spec.n_fft)[:: spec.hop]
    spectrum = np.fft.rfft(windows * spec.window, axis=-1)
    power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32) @ spec.filters.T
    expected = ((np.log10(np.maximum(power, mel.LOG_FLOOR)) + mel.LOG_OFFSET) / mel.LOG_SCALE).astype("f4")
    np.testing.assert_allclose(mel._window_features(windows, spec), expected, rtol=2.5e-7, atol=2.5e-7)
