from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from audio2blendshape.audio.constants import FRAMES_PER_SECOND, N_FFT, N_MELS, SAMPLE_RATE
from audio2blendshape.audio.decode import AudioError, load_audio, require_signal
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
