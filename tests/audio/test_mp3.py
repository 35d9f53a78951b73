"""MP3s from the wild: a damaged frame, a file cut short, and libmpg123's notes on stderr."""

import io
import logging
import os
import threading
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile

from audio2blendshape.audio.constants import SAMPLE_RATE
from audio2blendshape.audio.decode import AudioError, load_audio
from audio2blendshape.audio.sample_stream import open_stream

RATE = 44_100


def _mp3_tone(seconds: float) -> bytes:
    t = np.arange(round(seconds * RATE)) / RATE
    handle = io.BytesIO()
    soundfile.write(handle, (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32), RATE, format="MP3")
    return handle.getvalue()


def _packets(path: Path) -> list[tuple[int, int, float]]:
    """(byte offset, size, start in seconds) of each audio packet."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        return [
            (int(p.pos), p.size, float(p.pts * p.time_base))
            for p in container.demux(stream)
            if p.size and p.pts is not None and p.pos is not None
        ]


def _streamed(path: Path) -> np.ndarray:
    """The samples at the file's own rate (44.1 kHz is featurised natively, so not resampled)."""
    stream = open_stream(path, SAMPLE_RATE)
    assert stream.spec.rate == RATE
    return stream.take(0, 10**9)


def test_a_damaged_frame_becomes_silence_in_place_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    intact = tmp_path / "intact.mp3"
    intact.write_bytes(_mp3_tone(3.0))
    offset, size, start = _packets(intact)[60]
    data = bytearray(intact.read_bytes())
    data[offset + 4 : offset + size] = b"\xff" * (size - 4)  # the frame header kept, its data destroyed
    damaged = tmp_path / "damaged.mp3"
    damaged.write_bytes(bytes(data))

    reference = _streamed(intact)
    with caplog.at_level(logging.WARNING, logger="audio2blendshape.audio.mp3"):
        samples = _streamed(damaged)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    first = f"{damaged}: 1 damaged MP3 frame (0.026 s, the first at {start:.3f} s) replaced by silence"
    assert warnings[0].startswith(first)
    # Everything after the damage stays in time: same length, and the tone a second later is the intact one.
    assert abs(len(samples) - len(reference)) <= 1152
    later = slice(round((start + 0.5) * RATE), round((start + 1.0) * RATE))
    assert np.corrcoef(samples[later], reference[later])[0, 1] > 0.99
    # The decoder mutes the frame and those that borrowed bits from it (the bit reservoir).
    silent = slice(round((start + 0.03) * RATE), round((start + 0.1) * RATE))
    assert np.abs(samples[silent]).max() < 0.05 < np.abs(reference[silent]).max()


def test_an_mp3_cut_short_warns_with_the_missing_duration(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    whole = _mp3_tone(4.0)
    path = tmp_path / "cut.mp3"
    path.write_bytes(whole[: len(whole) // 2])
    with caplog.at_level(logging.WARNING):
        samples = _streamed(path)
    held = len(samples) / RATE
    assert 1.5 < held < 2.5
    messages = [r.getMessage() for r in caplog.records if "header promises" in r.getMessage()]
    assert messages == [
        f"{path}: the header promises 4.00 s but the file holds {held:.2f} s ({4.0 - held:.2f} s missing); "
        f"animating the {held:.2f} s present"
    ]


def test_an_intact_mp3_gets_no_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "whole.mp3"
    path.write_bytes(_mp3_tone(2.0))
    with caplog.at_level(logging.WARNING):
        assert abs(len(_streamed(path)) - 2 * RATE) < 2000
    assert not caplog.records


def test_libmpg123_notes_reach_the_terminal_only_when_verbose(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "x.mp3"
    path.write_bytes(np.random.default_rng(0).bytes(4000))  # libmpg123 prints resync notes on these bytes
    for read in (load_audio, lambda p: open_stream(p, SAMPLE_RATE)):
        with pytest.raises(AudioError, match="not a readable audio file"):
            read(path)
    assert "Note:" not in capfd.readouterr().err
    package = logging.getLogger("audio2blendshape")
    level = package.level
    package.setLevel(logging.DEBUG)  # what -v does
    try:
        with pytest.raises(AudioError):
            load_audio(path)
    finally:
        package.setLevel(level)
    assert "Illegal Audio-MPEG-Header" in capfd.readouterr().err


def test_decoders_probed_on_many_threads_leave_stderr_where_it_was(tmp_path: Path) -> None:
    path = tmp_path / "x.mp3"
    path.write_bytes(np.random.default_rng(0).bytes(4000))
    before = os.fstat(2)

    def probe() -> None:
        for _ in range(20):
            with pytest.raises(AudioError):
                open_stream(path, SAMPLE_RATE)

    threads = [threading.Thread(target=probe) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    after = os.fstat(2)
    assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)
