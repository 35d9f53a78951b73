"""``preview --html``: one self-contained HTML file of a take (audio, animation, viewer, head) for sharing.

The studio's own page and modules, with everything inlined so the file plays from disk, offline, with no
server: the JavaScript modules (three.js and the studio's) become ``data:`` URLs in the page's import map,
the stylesheet a ``<style>``, the head GLB and a 16 kHz WAV of the audio base64 strings, the animation JSON.
Browsers cannot resolve a relative import from a ``data:`` module, so the few relative imports inside the
vendored three.js files are pointed at bare names the import map defines (each must be found: a three.js
update that moves them fails here, loudly, instead of shipping a page that does not load).
"""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import soundfile

from audio2blendshape.atomic import atomic_write_text
from audio2blendshape.audio.constants import SAMPLE_RATE
from audio2blendshape.preview.studio_server import WEB_ROOT
from audio2blendshape.preview.studio_store import StudioConfig, animation_json, decode_clip, display_name
from audio2blendshape.runtime.animator import Animator
from audio2blendshape.runtime.writers import Animation

HEAD_FILE = "head/ict_face_arkit.glb"
# specifier in the import map -> (file under web/, relative imports in it -> the specifier they become)
MODULES: dict[str, tuple[str, dict[str, str]]] = {
    "three": ("vendor/three.module.js", {"./three.core.js": "three/core"}),
    "three/core": ("vendor/three.core.js", {}),
    "three/addons/loaders/GLTFLoader.js": (
        "vendor/addons/loaders/GLTFLoader.js",
        {
            "../utils/BufferGeometryUtils.js": "three/addons/utils/BufferGeometryUtils.js",
            "../utils/SkeletonUtils.js": "three/addons/utils/SkeletonUtils.js",
        },
    ),
    "three/addons/controls/OrbitControls.js": ("vendor/addons/controls/OrbitControls.js", {}),
    "three/addons/utils/BufferGeometryUtils.js": ("vendor/addons/utils/BufferGeometryUtils.js", {}),
    "three/addons/utils/SkeletonUtils.js": ("vendor/addons/utils/SkeletonUtils.js", {}),
    **{
        f"studio/{name}": (f"js/{name}", {})
        for name in ("names.js", "avatarload.js", "face.js", "defaulthead.js", "timeline.js", "studio.js")
    },
}
_RELATIVE_IMPORT = re.compile(r"""(?:from|import)\s*\(?\s*['"](\.{1,2}/[^'"]+)['"]""")


class HtmlExportError(ValueError):
    """The page cannot be assembled (the package's web files are missing or changed)."""


def _data_url(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _module_source(path: str, rewrites: dict[str, str]) -> str:
    text = (WEB_ROOT / path).read_text(encoding="utf-8")
    for relative, bare in rewrites.items():
        quoted = re.compile(r"""(from\s*['"])""" + re.escape(relative) + r"""(['"])""")
        text, count = quoted.subn(r"\g<1>" + bare.replace("\\", "") + r"\g<2>", text)
        if not count:
            raise HtmlExportError(
                f"{WEB_ROOT / path}: no import of {relative!r} to inline (three.js changed?)"
            )
    left = _RELATIVE_IMPORT.findall(text)
    if left:
        raise HtmlExportError(
            f"{WEB_ROOT / path}: relative imports {left} cannot load from a standalone file"
        )
    return text


def import_map() -> str:
    """The standalone page's import map: every module as a ``data:`` URL."""
    imports = {
        spec: _data_url("text/javascript", _module_source(path, rewrites).encode("utf-8"))
        for spec, (path, rewrites) in MODULES.items()
    }
    return json.dumps({"imports": imports})


def wav_data_url(samples: np.ndarray, rate: int = SAMPLE_RATE) -> str:
    """16-bit WAV of mono samples at ``rate``, as a ``data:`` URL."""
    buffer = io.BytesIO()
    soundfile.write(buffer, np.clip(samples, -1.0, 1.0), rate, subtype="PCM_16", format="WAV")
    return _data_url("audio/wav", buffer.getvalue())


def _replace_once(html: str, old: str, new: str) -> str:
    if html.count(old) != 1:
        raise HtmlExportError(f"{WEB_ROOT / 'index.html'}: expected {old[:60]!r} once")
    return html.replace(old, new)


def standalone_html(animation: Animation, samples: np.ndarray, title: str, rate: int = SAMPLE_RATE) -> str:
    """The page of one take, playable from disk: ``samples`` are the audio that was animated, at ``rate``."""
    html = (WEB_ROOT / "index.html").read_text(encoding="utf-8")
    embed = {
        "title": display_name(title),
        "animation": animation_json(animation),
        "audio": wav_data_url(samples, rate),
        "head": base64.b64encode((WEB_ROOT / HEAD_FILE).read_bytes()).decode("ascii"),
    }
    # Inside <script>, "</" could close the element early; "<\/" means the same to JSON and JavaScript.
    embed_js = json.dumps(embed).replace("</", "<\\/")
    start = html.index('<script type="importmap">')
    end = html.index("</script>", start) + len("</script>")
    html = html[:start] + f'<script type="importmap">{import_map()}</script>' + html[end:]
    css = (WEB_ROOT / "studio.css").read_text(encoding="utf-8")
    html = _replace_once(html, '<link rel="stylesheet" href="studio.css">', f"<style>\n{css}</style>")
    for link, licence in (
        ("head/LICENSE.ict-facekit.txt", "head/LICENSE.ict-facekit.txt"),
        ("vendor/LICENSE.three.txt", "vendor/LICENSE.three.txt"),
    ):
        url = _data_url("text/plain;charset=utf-8", (WEB_ROOT / licence).read_bytes())
        html = _replace_once(html, f'href="{link}"', f'href="{url}"')
    script = (
        f"<script>window.STUDIO_EMBED = {embed_js};</script>\n"
        "<script type=\"module\">import 'studio/studio.js';</script>"
    )
    return _replace_once(html, '<script type="module" src="js/studio.js"></script>', script)


def write_standalone(
    path: Path, animation: Animation, samples: np.ndarray, title: str, rate: int = SAMPLE_RATE
) -> Path:
    """Write the take's page to ``path`` atomically; returns the path."""
    if path.suffix.lower() not in (".html", ".htm"):
        raise HtmlExportError(f"{path}: a standalone take is written as .html")
    atomic_write_text(path, standalone_html(animation, samples, title, rate))
    return path


def export_take(
    audio: Path,
    out: Path,
    checkpoint: Path | None = None,
    fps: float = 60.0,
    idle: bool = True,
    seed: int = 0,
) -> Path:
    """Animate ``audio`` (the bundled model, or ``checkpoint``) and write its standalone page to ``out``."""
    if out.suffix.lower() not in (".html", ".htm"):
        raise HtmlExportError(f"{out}: a standalone take is written as .html")
    samples, rate = decode_clip(audio, StudioConfig().max_audio_seconds, str(audio))
    animation = Animator.load(checkpoint).animate(samples, fps=fps, idle=idle, seed=seed, sample_rate=rate)
    return write_standalone(out, animation, samples, audio.name, rate)
