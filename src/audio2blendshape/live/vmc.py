"""VMC protocol output: blendshape weights as OSC over UDP, for VSeeFace, Warudo, VNyan, VMagicMirror.

Per frame one OSC bundle (timetag "immediately") holding a ``/VMC/Ext/Blend/Val (string name, float
value)`` message per shape, in the order the names are given, then ``/VMC/Ext/Blend/Apply`` (no
arguments): receivers store the values and show them together when Apply arrives, so one bundle per frame
never shows half a frame. Names are ARKit's, the "Perfect Sync" convention (receivers map them to the
avatar's blendshape clips); ``pascal=True`` sends ``JawOpen`` instead of ``jawOpen`` for receivers or
avatars that want that spelling. Receivers listen on UDP port 39539 by default.

The bundle is built with python-osc's builders, once per list of names; each frame then only overwrites
the float arguments in a copy of it (big-endian float32 at offsets recorded from the built messages).
Building 52 messages per frame with the builders costs ~0.6 ms of pure Python, which a 60 fps stream on a
small machine (sharing the CPU with the model) should not pay; the bytes are identical (see the tests).

A frame with a head rotation also carries ``/VMC/Ext/Bone/Pos (string "Head", float px, py, pz, qx, qy,
qz, qw)`` before Apply: the Head bone (Unity's ``HumanBodyBones`` name) at local position (0, 0, 0) with
the rotation as a unit quaternion in Unity's left-handed frame (x right, y up, z forward, the way the
avatar faces). Our yaw/pitch/roll are radians in ARKit's right-handed face frame (x the character's left),
so going to Unity mirrors x: pitch keeps its sign, yaw and roll flip. The quaternion is
``Quaternion.Euler(deg(pitch), -deg(yaw), -deg(roll))``, i.e. ``q_y(-yaw) q_x(pitch) q_z(-roll)``
(Unity's Euler order: roll, then pitch, then yaw). Frames without a head send no bone, as before.
"""

from __future__ import annotations

import numpy as np
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder

from audio2blendshape.live.sink import UdpSink, arkit_columns
from audio2blendshape.names import ARKIT_NAMES, to_pascal

VMC_PORT = 39539
VAL_ADDRESS = "/VMC/Ext/Blend/Val"
APPLY_ADDRESS = "/VMC/Ext/Blend/Apply"
BONE_ADDRESS = "/VMC/Ext/Bone/Pos"
HEAD_BONE = "Head"
_BUNDLE_HEADER = 16  # "#bundle\0" + 8-byte timetag, then (int32 size, message) per element


def head_quaternion(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Head yaw, pitch, roll (radians, ARKit signs) -> Unity (qx, qy, qz, qw), float64 (4,), unit length.

    ``q_y(-yaw) q_x(pitch) q_z(-roll)``, which is Unity's ``Quaternion.Euler(deg(pitch), -deg(yaw),
    -deg(roll))``: x is mirrored between the two frames, so rotations about y and z change sign.
    """
    half = np.array([pitch, -yaw, -roll], dtype=np.float64) / 2
    sx, sy, sz = np.sin(half)
    cx, cy, cz = np.cos(half)
    # Hamilton product q_y * q_x * q_z, expanded.
    return np.array(
        [
            cy * sx * cz + sy * cx * sz,
            sy * cx * cz - cy * sx * sz,
            cy * cx * sz - sy * sx * cz,
            cy * cx * cz + sy * sx * sz,
        ]
    )


def build_vmc_bundle(names: tuple[str, ...], values: np.ndarray, head: np.ndarray | None = None) -> bytes:
    """The OSC bundle of one frame: a Val message per (name, value) (values (K,)), the Head bone when
    ``head`` (yaw, pitch, roll in radians) is given, then Apply.

    Builds every message with python-osc; used for the template and as the reference in tests.
    """
    bundle = OscBundleBuilder(IMMEDIATELY)
    for name, value in zip(names, np.asarray(values, dtype=np.float32).tolist(), strict=True):
        message = OscMessageBuilder(VAL_ADDRESS)
        message.add_arg(name, OscMessageBuilder.ARG_TYPE_STRING)
        message.add_arg(float(value), OscMessageBuilder.ARG_TYPE_FLOAT)
        bundle.add_content(message.build())
    if head is not None:
        bone = OscMessageBuilder(BONE_ADDRESS)
        bone.add_arg(HEAD_BONE, OscMessageBuilder.ARG_TYPE_STRING)
        rotation = head_quaternion(*(float(v) for v in np.asarray(head, dtype=np.float32)))
        for number in (0.0, 0.0, 0.0, *rotation.tolist()):
            bone.add_arg(float(number), OscMessageBuilder.ARG_TYPE_FLOAT)
        bundle.add_content(bone.build())
    bundle.add_content(OscMessageBuilder(APPLY_ADDRESS).build())
    return bytes(bundle.build().dgram)


class VmcBundleTemplate:
    """A frame's bundle built once for a list of names (with the Head bone when ``head``); ``fill(values,
    head)`` gives the bytes for new values."""

    def __init__(self, names: tuple[str, ...], head: bool = False) -> None:
        rest = np.zeros(3, np.float32) if head else None
        self.template = bytearray(build_vmc_bundle(names, np.zeros(len(names), np.float32), rest))
        self.head = head
        offsets = []
        position = _BUNDLE_HEADER
        for _ in range(len(names) + head):
            size = int.from_bytes(self.template[position : position + 4], "big")
            position += 4 + size
            offsets.append(position - 4)  # the float is the message's last argument, its last 4 bytes
        # (K, 4) byte positions of each value, for one vectorised write per frame.
        self.positions = np.asarray(offsets[: len(names)], dtype=np.int64)[:, None] + np.arange(4)
        # The Head message ends with qx, qy, qz, qw: its last 16 bytes.
        self.quaternion_at = offsets[-1] - 12 if head else -1

    def fill(self, values: np.ndarray, head: np.ndarray | None = None) -> bytes:
        """Bytes of the bundle carrying ``values`` (K,) in the template's name order, and ``head`` (3,)."""
        if (head is not None) != self.head:
            raise ValueError("VmcBundleTemplate: built with" + ("" if self.head else "out") + " a head")
        data = np.frombuffer(bytes(self.template), dtype=np.uint8).copy()
        data[self.positions] = np.asarray(values, dtype=">f4").view(np.uint8).reshape(-1, 4)
        if head is not None:
            rotation = head_quaternion(*(float(v) for v in head))
            data[self.quaternion_at : self.quaternion_at + 16] = rotation.astype(">f4").view(np.uint8)
        return data.tobytes()


class VmcSender(UdpSink):
    """Sends frames to a VMC receiver at ``"HOST:PORT"``; names must be ARKit names (any subset)."""

    what = "VMC output"

    def __init__(self, address: str, pascal: bool = False) -> None:
        super().__init__(address)
        self.pascal = pascal
        self._wire: tuple[str, ...] = ()
        self._templates: dict[bool, VmcBundleTemplate] = {}  # without / with the Head bone

    def _prepare(self, names: tuple[str, ...]) -> None:
        columns = arkit_columns(names, self.where, require_all=False)
        # Canonical spelling whatever the caller's case, as receivers look names up exactly.
        wire = tuple(ARKIT_NAMES[int(i)] for i in columns)
        self._wire = tuple(to_pascal(n) for n in wire) if self.pascal else wire
        self._templates = {}

    def _encode(self, time_s: float, values: np.ndarray, head: np.ndarray | None) -> bytes:
        with_head = head is not None
        if with_head not in self._templates:  # built on first use: most streams never send a head
            self._templates[with_head] = VmcBundleTemplate(self._wire, with_head)
        return self._templates[with_head].fill(values, head)
