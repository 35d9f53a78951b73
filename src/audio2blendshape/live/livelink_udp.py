"""Live Link Face over UDP: the datagram the iPhone app sends to Unreal (port 11111), written and read.

Layout of one datagram (one frame), as in the shared formats reference:

====================  ==========================================================================
uint32 LE             version, 6
37 bytes              device id, ``"$"`` + a 36-character UUID (no length prefix, no terminator)
int32 BE + bytes      subject name: length in bytes, then UTF-8 bytes (no terminator)
uint32 BE x 2         frame number, sub-frame
uint32 BE x 2         frame rate numerator, denominator (60, 1 for 60 fps)
uint8                 count, 61
float32 BE x 61       the 52 ARKit blendshapes in canonical order, then head yaw/pitch/roll and
                      left/right eye yaw/pitch/roll (radians)
====================  ==========================================================================

Why the device id looks unprefixed: Unreal serialises a uint8 version and then strings as an int32 BE
byte length and the bytes. ``06`` then length 36 (``00 00 00 24``) then the UUID is byte for byte the same
as ``uint32 LE 6`` then ``"$"`` (0x24) + UUID; hence the ``$`` and hence the UUID must be exactly 36
characters. The sub-frame is Unreal's ``FFrameTime::SubFrame``, a float32 in [0, 1): its 4 big-endian bytes
fill the "uint32" slot (for frames on the grid it is 0.0, all zero bytes either way).

Frame number and sub-frame come from the frame's timestamp: ``time_s * rate`` frames, the integer part
and the fraction (a hair of tolerance absorbs float error, so ``0.1 s`` at 60 fps is frame 6, not 5.999).
Time 0 is the start of the stream, not the time of day the app uses: Unreal's Live Link shows the latest
frame of a subject, so the count only has to increase.

Values 53..55 (0-based 52..54) carry the frame's head rotation when the sender is given one: yaw, pitch,
roll in radians, the app's own unit and signs (``runtime.writers.Animation``); without one they are 0, and
the eye rotations are always 0 (eye motion is in the eyeLook blendshapes).
"""

from __future__ import annotations

import math
import struct
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from audio2blendshape.live.sink import LiveOutputError, UdpSink, arkit_columns
from audio2blendshape.names import NUM_ARKIT

LIVELINK_PORT = 11111
PACKET_VERSION = 6
VALUE_COUNT = 61  # 52 blendshapes + 9 head and eye rotations
HEAD_AND_EYES = (
    "headYaw", "headPitch", "headRoll", "leftEyeYaw", "leftEyePitch", "leftEyeRoll",
    "rightEyeYaw", "rightEyePitch", "rightEyeRoll",
)  # fmt: skip
_UUID_CHARS = 36
_FRAME_EPSILON = 1e-6  # frames; float error in time_s * rate is far below this
_MAX_SUB_FRAME = 1.0 - 2.0**-24  # largest float32 below 1: a larger fraction would round up to 1.0f
_TAIL = struct.Struct(f">IfIIB{VALUE_COUNT}f")  # frame, sub-frame, rate num/den, count, values


@dataclass(frozen=True)
class LiveLinkPacket:
    """One decoded datagram."""

    version: int
    device_id: str  # "$" + UUID, as on the wire
    subject: str
    frame_number: int
    sub_frame: float  # fraction of a frame, [0, 1)
    rate: Fraction  # frames per second, numerator / denominator as sent
    blendshapes: np.ndarray  # (52,) float32, ARKit canonical order
    head_and_eyes: np.ndarray  # (9,) float32, in the order of HEAD_AND_EYES


def frame_rate(fps: float | Fraction) -> Fraction:
    """Frames per second as a fraction with a small denominator (29.97 -> 2997/100, 30000/1001 kept)."""
    rate = Fraction(fps).limit_denominator(1001)
    if rate <= 0 or rate.numerator >= 2**32:
        raise LiveOutputError(f"Live Link frame rate {fps!r} must be a positive number of frames per second")
    return rate


def livelink_frame_time(time_s: float, rate: Fraction) -> tuple[int, float]:
    """Seconds -> (frame number, sub-frame in [0, 1)) at ``rate`` frames per second."""
    frames = float(time_s) * rate.numerator / rate.denominator
    if not math.isfinite(frames) or frames < 0 or frames >= 2**32:
        raise LiveOutputError(f"Live Link frame time: time {time_s!r} s is not in 0 .. 2**32 frames")
    whole = math.floor(frames + _FRAME_EPSILON)
    return whole, min(max(frames - whole, 0.0), _MAX_SUB_FRAME)


def livelink_device_id(device: str | uuid.UUID) -> str:
    """``"$"`` + the 36-character UUID, from a UUID, its text, or text already starting with ``"$"``."""
    text = str(device)
    text = text[1:] if text.startswith("$") else text
    try:
        parsed = uuid.UUID(text)
    except ValueError as error:
        raise LiveOutputError(f"Live Link device id {device!r} is not a UUID") from error
    if len(text) != _UUID_CHARS:  # braces or "urn:" forms would shift every later field
        text = str(parsed).upper()
    return "$" + text


def encode_livelink_packet(
    blendshapes: np.ndarray,
    frame_number: int,
    sub_frame: float = 0.0,
    rate: Fraction = Fraction(60),
    subject: str = "audio2blendshape",
    device_id: str = "$00000000-0000-0000-0000-000000000000",
    head_and_eyes: Sequence[float] | np.ndarray | None = None,
) -> bytes:
    """One datagram: ``blendshapes`` (52,) in ARKit canonical order, ``head_and_eyes`` (9,) or zeros."""
    values = np.asarray(blendshapes, dtype=np.float32)
    if values.shape != (NUM_ARKIT,):
        raise LiveOutputError(f"Live Link packet: blendshapes have shape {values.shape}, expected (52,)")
    extra = np.zeros(len(HEAD_AND_EYES), np.float32) if head_and_eyes is None else head_and_eyes
    extra = np.asarray(extra, dtype=np.float32)
    if extra.shape != (len(HEAD_AND_EYES),):
        raise LiveOutputError(f"Live Link packet: head_and_eyes has shape {extra.shape}, expected (9,)")
    device = livelink_device_id(device_id).encode("ascii")
    name = subject.encode("utf-8")
    if not 0 < len(name) <= 255:
        raise LiveOutputError(f"Live Link subject name {subject!r} must be 1..255 bytes of UTF-8")
    if not 0 <= frame_number < 2**32 or not 0.0 <= sub_frame < 1.0:
        raise LiveOutputError(f"Live Link frame time {frame_number} + {sub_frame} is out of range")
    head = struct.pack("<I", PACKET_VERSION) + device + struct.pack(">i", len(name)) + name
    tail = _TAIL.pack(
        frame_number, sub_frame, rate.numerator, rate.denominator, VALUE_COUNT,
        *values.tolist(), *extra.tolist(),
    )  # fmt: skip
    return head + tail


def decode_livelink_packet(data: bytes) -> LiveLinkPacket:
    """Parse one datagram; a ``LiveOutputError`` says which field is wrong and where."""
    data = bytes(data)
    fixed = 4 + 1 + _UUID_CHARS + 4
    if len(data) < fixed + _TAIL.size:
        raise LiveOutputError(f"Live Link packet: {len(data)} bytes is too short for a frame")
    (version,) = struct.unpack_from("<I", data, 0)
    if version != PACKET_VERSION:
        raise LiveOutputError(f"Live Link packet: version {version}, only {PACKET_VERSION} is understood")
    device = data[4 : 5 + _UUID_CHARS].decode("ascii", errors="replace")
    if not device.startswith("$"):
        raise LiveOutputError(f"Live Link packet: device id {device!r} does not start with '$'")
    (name_length,) = struct.unpack_from(">i", data, 5 + _UUID_CHARS)
    if not 0 <= name_length <= len(data) - fixed - _TAIL.size:
        raise LiveOutputError(f"Live Link packet: subject name length {name_length} does not fit the packet")
    subject = data[fixed : fixed + name_length].decode("utf-8", errors="replace")
    tail = data[fixed + name_length :]
    if len(tail) != _TAIL.size:
        raise LiveOutputError(
            f"Live Link packet: {len(tail)} bytes after the subject name, expected {_TAIL.size} (61 values)"
        )
    frame, sub_frame, numerator, denominator, count, *values = _TAIL.unpack(tail)
    if count != VALUE_COUNT or denominator == 0:
        raise LiveOutputError(
            f"Live Link packet: count {count} (expected 61), rate {numerator}/{denominator}"
        )
    array = np.asarray(values, dtype=np.float32)
    return LiveLinkPacket(
        version, device, subject, frame, sub_frame, Fraction(numerator, denominator),
        array[:NUM_ARKIT], array[NUM_ARKIT:],
    )  # fmt: skip


class LiveLinkSender(UdpSink):
    """Sends frames to Unreal's Live Link Face source at ``"HOST:PORT"`` as subject ``subject``.

    Names must be exactly the 52 ARKit names, in any order (the packet has a slot for each). ``fps`` only
    labels the frame numbers; send at whatever rate frames come. A frame's head rotation (yaw, pitch,
    roll in radians) fills the packet's head slots when given, else they are 0; eye rotations are 0.
    """

    what = "Live Link output"

    def __init__(
        self,
        address: str,
        subject: str = "audio2blendshape",
        fps: float | Fraction = 60,
        device_id: str | uuid.UUID | None = None,
    ) -> None:
        # A device id derived from the subject keeps Unreal's source the same from one run to the next.
        device = device_id or uuid.uuid5(uuid.NAMESPACE_URL, f"audio2blendshape:{subject}")
        self.device_id = livelink_device_id(str(device).upper() if device_id is None else device)
        self.rate = frame_rate(fps)
        self.subject = subject
        encode_livelink_packet(np.zeros(NUM_ARKIT), 0, 0.0, self.rate, subject, self.device_id)  # validate
        super().__init__(address)
        self._columns = np.arange(NUM_ARKIT)

    def _prepare(self, names: tuple[str, ...]) -> None:
        self._columns = arkit_columns(names, self.where, require_all=True)

    def _encode(self, time_s: float, values: np.ndarray, head: np.ndarray | None) -> bytes:
        canonical = np.empty(NUM_ARKIT, np.float32)
        canonical[self._columns] = values  # caller's order -> canonical order
        try:
            frame, sub_frame = livelink_frame_time(time_s, self.rate)
        except LiveOutputError as error:
            raise LiveOutputError(f"{self.where}: {error}") from None
        extra = None
        if head is not None:
            extra = np.zeros(len(HEAD_AND_EYES), np.float32)
            extra[:3] = head
        return encode_livelink_packet(
            canonical, frame, sub_frame, self.rate, self.subject, self.device_id, extra
        )
