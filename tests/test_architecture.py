"""The package's architecture (docs/architecture.md) as tests: import contracts, sizes, a torch-free runtime.

The import contracts live in pyproject.toml ([tool.importlinter]) and are checked by import-linter; the rest
are small AST and subprocess checks of rules import-linter cannot express.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "audio2blendshape"
SUBPACKAGES = (
    "audio", "expression", "models", "runtime", "live", "data", "training", "evaluation", "preview", "cli",
)  # fmt: skip
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60
TORCH_FREE = ("audio", "expression", "runtime", "live")


def _modules(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def test_import_contracts_hold() -> None:
    # In a child process: import-linter configures logging with dictConfig, which disables the loggers that
    # exist already, so later tests in this process would no longer see the package's warnings.
    script = (
        "import sys; from importlinter.cli import lint_imports; "
        f"sys.exit(lint_imports(config_filename={str(REPO / 'pyproject.toml')!r}, no_cache=True))"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_the_package_is_laid_out_in_the_subpackages_the_docs_name() -> None:
    top_level = {p.stem for p in PACKAGE.glob("*.py")}
    assert top_level == {"__init__", "__main__", "names", "typed_config", "atomic"}, (
        "a new top-level module: put it in the subpackage of its job (docs/architecture.md)"
    )
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders == set(SUBPACKAGES)
    architecture = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    for name in SUBPACKAGES:
        assert f"`{name}/`" in architecture, f"docs/architecture.md does not describe {name}/"


@pytest.mark.parametrize("name", SUBPACKAGES)
def test_each_subpackage_says_what_lives_there_and_what_it_may_import(name: str) -> None:
    init = PACKAGE / name / "__init__.py"
    docstring = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
    assert "Lives here:" in docstring and "May import" in docstring, (
        f"{init}: say what lives here and may import"
    )
    for module in _modules(PACKAGE / name):
        if module.name != "__init__.py":
            assert f"``{module.stem}``" in docstring, f"{init}: the docstring does not name {module.stem}"


def test_files_and_functions_stay_small() -> None:
    too_long = []
    for path in _modules(PACKAGE):
        text = path.read_text(encoding="utf-8")
        lines = text.count("\n")
        if lines > MAX_FILE_LINES:
            too_long.append(f"{path.relative_to(REPO)}: {lines} lines (at most {MAX_FILE_LINES})")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name}(): {length} lines")
    assert not too_long, "split these:\n" + "\n".join(too_long)


def test_torch_is_reached_from_the_runtime_only_through_its_one_door() -> None:
    """Function-level imports escape import-linter's static graph only if they are dynamic: there is one."""
    dynamic = []
    for name in TORCH_FREE:
        for path in _modules(PACKAGE / name):
            text = path.read_text(encoding="utf-8")
            if "import_module(" in text or "__import__(" in text:
                dynamic.append(str(path.relative_to(PACKAGE)))
    assert dynamic == ["runtime/backends.py"]


BLOCK_TORCH = """
import importlib.abc, sys

class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch.") or name.startswith("safetensors"):
            raise ImportError(f"No module named {name!r} (blocked by the test)", name=name)
        return None

sys.meta_path.insert(0, NoTorch())
"""


def _run_without_torch(code: str) -> subprocess.CompletedProcess[str]:
    script = BLOCK_TORCH + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)


def test_audio_runtime_and_live_import_without_torch() -> None:
    modules = [
        ".".join(("audio2blendshape", *path.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(
            ".__init__"
        )
        for name in TORCH_FREE
        for path in _modules(PACKAGE / name)
    ]
    result = _run_without_torch(
        f"""
        import importlib, sys
        for name in {modules!r}:
            importlib.import_module(name)
        from audio2blendshape import Animator, Streamer, Animation, ARKIT_NAMES, open_live_outputs
        assert "torch" not in sys.modules
        print(len({modules!r}))
        """
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) == len(modules) > 15


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny FrameModel as a checkpoint and as its full ONNX export."""
    import torch

    from audio2blendshape.models.onnx_export import export_onnx
    from audio2blendshape.names import ARKIT_NAMES
    from audio2blendshape.training.checkpoint import build_model, save_checkpoint
    from audio2blendshape.training.config import load_config

    folder = tmp_path_factory.mktemp("tiny")
    tiny = ["model.kind=frame", "frame.d_model=16", "frame.conv_layers=1", "frame.d_attention=8",
            "frame.n_heads=2", "frame.decoder_hidden=8"]  # fmt: skip
    config = load_config(None, tiny)
    torch.manual_seed(0)
    model = build_model(config, len(ARKIT_NAMES))
    checkpoint = save_checkpoint(folder / "tiny.safetensors", model, config, ARKIT_NAMES, 1)
    return checkpoint, export_onnx(model, ARKIT_NAMES, folder / "tiny.onnx")


def test_an_onnx_model_animates_and_streams_without_torch(tiny_onnx: tuple[Path, Path]) -> None:
    checkpoint, onnx_file = tiny_onnx
    result = _run_without_torch(
        f"""
        import sys
        import numpy as np
        from audio2blendshape import Animator, Streamer
        from audio2blendshape.runtime.backends import BackendError, load_stream_model

        animator = Animator.load({str(onnx_file)!r})
        offline = animator.animate({str(REPO / "examples" / "hello.wav")!r}, fps=60, seed=3)
        audio = np.sin(np.arange(16_000, dtype=np.float32) / 20) * 0.1
        streamer = Streamer(load_stream_model({str(onnx_file)!r}, "onnx"), fps=60, seed=3)
        parts = [streamer.push(audio[i : i + 320]) for i in range(0, len(audio), 320)] + [streamer.flush()]
        streamed = np.concatenate([p.weights for p in parts])
        expected = animator.animate(audio, fps=60, seed=3).weights
        assert np.abs(streamed - expected).max() < 1e-4
        try:
            Animator.load({str(checkpoint)!r})
        except BackendError as error:
            print(error)
        assert "torch" not in sys.modules
        print(offline.frames)
        """
    )
    assert result.returncode == 0, result.stderr
    message, frames = result.stdout.strip().splitlines()
    assert str(checkpoint) in message and "export-onnx" in message
    assert int(frames) == 291  # 4.85 s of hello.wav at 60 fps


def test_the_door_reports_a_missing_torch_but_not_other_import_errors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from audio2blendshape.runtime import backends

    monkeypatch.setattr(backends, "TORCH_BACKEND", "audio2blendshape.no_such_module")
    with pytest.raises(ModuleNotFoundError, match="no_such_module"):
        backends.torch_backend("x.safetensors")


DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
DOTTED = re.compile(r"\baudio2blendshape(?:\.[A-Za-z_]\w*)+")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_doc_links_and_module_names_resolve(doc: Path) -> None:
    import importlib

    text = doc.read_text(encoding="utf-8")
    for target in LINK.findall(text):
        if "://" in target or target.startswith("mailto:"):
            continue
        assert (doc.parent / target).exists(), f"{doc.name}: broken link {target}"
    for dotted in sorted(set(DOTTED.findall(text))):
        parts = dotted.split(".")
        for cut in range(len(parts), 0, -1):  # the longest importable prefix, then attributes
            try:
                found: object = importlib.import_module(".".join(parts[:cut]))
            except ModuleNotFoundError:
                continue
            for attribute in parts[cut:]:
                assert hasattr(found, attribute), f"{doc.name}: {dotted} does not exist"
                found = getattr(found, attribute)
            break
        else:
            pytest.fail(f"{doc.name}: {dotted} does not exist")
    for path in re.findall(r"`((?:src|bench|tests|configs|examples|docs)/[\w./-]+\.\w+)`", text):
        assert (REPO / path).exists(), f"{doc.name}: {path} does not exist"
