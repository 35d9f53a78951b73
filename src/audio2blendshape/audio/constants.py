"""The audio constants every other module takes its numbers from: one place, as Whisper's ``audio.py``.

Every model in the package sees the same features: 80 log-mel bins, a 25 ms Hann window and a 10 ms hop, so
100 frames per second. Frame ``i`` is centred on sample ``i * HOP_LENGTH`` and covers samples ``[i*160 - 200,
i*160 + 200)``; the audio is zero-padded at both ends, so ``n`` samples give ``n // HOP_LENGTH`` frames
(3 s -> 300 frames).
"""

SAMPLE_RATE = 16_000  # Hz; every waveform is resampled to this rate
N_FFT = 400  # samples in a 25 ms analysis window
HOP_LENGTH = 160  # samples between frames: 10 ms
N_MELS = 80  # mel bins
FRAMES_PER_SECOND = SAMPLE_RATE // HOP_LENGTH  # 100 feature frames per second
WINDOW_FRAMES = 300  # the seed's training window: 3 s
LOG_FLOOR = 1e-10  # power floor before log10, so digital silence stays finite
LOG_OFFSET = 4.0  # (log10(power) + LOG_OFFSET) / LOG_SCALE keeps speech roughly in [-1, 1]
LOG_SCALE = 4.0
