"""Small avatar files for the studio's browser tests, built here: glTF, GLB, VRM 0.x and VRM 1.0.

Each mesh is one triangle; each morph target moves its three vertices. VRM files carry the fields the page
reads (VRM 0.x ``extensions.VRM.blendShapeMaster.blendShapeGroups``, VRM 1.0
``extensions.VRMC_vrm.expressions``) plus a minimal ``meta`` and ``humanoid`` (the head bone only: enough
for the page, not a complete humanoid as the specs require of a real avatar).
"""

from __future__ import annotations

import base64
import json
import struct
import urllib.parse
from pathlib import Path
from typing import Any

TRIANGLE = struct.pack("<9f", 0, 0, 0, 0.1, 0, 0, 0, 0.1, 0)
DELTA = struct.pack("<9f", 0, 0, 0.01, 0, 0, 0.01, 0, 0, 0.01)


def gltf_document(meshes: list[list[str]], names_in: str = "mesh") -> tuple[dict[str, Any], bytes]:
    """A glTF whose node ``i + 1`` (under node 0) holds mesh ``i``, its morph targets named ``meshes[i]``.

    ``names_in``: where the target names are written, ``"mesh"`` (``mesh.extras.targetNames``, what three.js
    reads) or ``"primitive"`` (``primitives[0].extras.targetNames``, where UniVRM 0.x writes them).
    Returns the JSON (without ``buffers[0].uri``) and the one buffer's bytes.
    """
    blob, views, accessors, mesh_defs = b"", [], [], []
    accessor = {"componentType": 5126, "count": 3, "type": "VEC3"}
    for targets in meshes:
        first = len(accessors)
        for i, chunk in enumerate([TRIANGLE] + [DELTA] * len(targets)):
            views.append({"buffer": 0, "byteOffset": len(blob), "byteLength": len(chunk)})
            bounds = {"min": [0, 0, 0], "max": [0.1, 0.1, 0]} if i == 0 else {}
            accessors.append({**accessor, "bufferView": len(views) - 1, **bounds})
            blob += chunk
        primitive: dict[str, Any] = {"attributes": {"POSITION": first}}
        if targets:
            primitive["targets"] = [{"POSITION": first + 1 + i} for i in range(len(targets))]
        mesh: dict[str, Any] = {"primitives": [primitive]}
        if targets and names_in == "mesh":
            mesh["extras"] = {"targetNames": targets}
        elif targets:
            primitive["extras"] = {"targetNames": targets}
        mesh_defs.append(mesh)
    nodes: list[dict[str, Any]] = [{"name": "root", "children": list(range(1, len(meshes) + 1))}]
    nodes += [{"name": f"mesh{i}", "mesh": i, "translation": [0, 0, 0.01 * i]} for i in range(len(meshes))]
    document = {
        "asset": {"version": "2.0", "generator": "audio2blendshape tests"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": nodes,
        "meshes": mesh_defs,
        "buffers": [{"byteLength": len(blob)}],
        "bufferViews": views,
        "accessors": accessors,
    }
    return document, blob


def write_glb(path: Path, document: dict[str, Any], blob: bytes) -> Path:
    """A GLB (glTF binary: a JSON chunk and a BIN chunk, each padded to 4 bytes)."""
    text = json.dumps(document).encode()
    text += b" " * (-len(text) % 4)
    blob += b"\0" * (-len(blob) % 4)
    chunks = struct.pack("<I4s", len(text), b"JSON") + text + struct.pack("<I4s", len(blob), b"BIN\0") + blob
    path.write_bytes(struct.pack("<4sII", b"glTF", 2, 12 + len(chunks)) + chunks)
    return path


def write_gltf(path: Path, document: dict[str, Any], blob: bytes, external: str | None = None) -> Path:
    """A .gltf with its buffer in a data: URI, or in the file ``external`` (a path relative to the .gltf)."""
    buffer = document["buffers"][0]
    if external:
        buffer["uri"] = urllib.parse.quote(external)
        (path.parent / external).parent.mkdir(parents=True, exist_ok=True)
        (path.parent / external).write_bytes(blob)
    else:
        buffer["uri"] = "data:application/octet-stream;base64," + base64.b64encode(blob).decode()
    path.write_text(json.dumps(document))
    return path


def vrm0(path: Path, face_targets: list[str], groups: list[dict[str, Any]]) -> Path:
    """A VRM 0.x file: mesh 0 a body without targets, mesh 1 (node 2) the face; ``groups`` as written in
    ``blendShapeMaster.blendShapeGroups`` (binds name the glTF mesh index, weights 0 to 100)."""
    document, blob = gltf_document([[], face_targets], names_in="primitive")
    document["extensionsUsed"] = ["VRM"]
    document["extensions"] = {
        "VRM": {
            "exporterVersion": "audio2blendshape tests",
            "specVersion": "0.0",
            "meta": {"title": "test avatar", "version": "1", "author": "tests", "licenseName": "CC0"},
            "humanoid": {"humanBones": [{"bone": "head", "node": 2}]},
            "blendShapeMaster": {"blendShapeGroups": groups},
        }
    }
    return write_glb(path, document, blob)


def vrm1(path: Path, face_targets: list[str], preset: dict[str, Any], custom: dict[str, Any]) -> Path:
    """A VRM 1.0 file: mesh 0 a body, mesh 1 in node 2 the face; ``preset`` and ``custom`` as written in
    ``VRMC_vrm.expressions`` (``morphTargetBinds`` name the node, weights 0 to 1)."""
    document, blob = gltf_document([[], face_targets])
    document["extensionsUsed"] = ["VRMC_vrm"]
    document["extensions"] = {
        "VRMC_vrm": {
            "specVersion": "1.0",
            "meta": {
                "name": "test avatar",
                "authors": ["tests"],
                "licenseUrl": "https://vrm.dev/licenses/1.0/",
                "avatarPermission": "everyone",
            },
            "humanoid": {"humanBones": {"head": {"node": 2}}},
            "expressions": {"preset": preset, "custom": custom},
        }
    }
    return write_glb(path, document, blob)


def binds(node: int, *pairs: tuple[int, float]) -> dict[str, Any]:
    """A VRM 1.0 expression: ``morphTargetBinds`` on ``node`` for each (target index, weight)."""
    return {"morphTargetBinds": [{"node": node, "index": i, "weight": w} for i, w in pairs]}
