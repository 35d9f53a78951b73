"""The command line as users call it: subprocesses, exit codes and messages."""

from pathlib import Path

from conftest import run_cli

from audio2blendshape.models.simplified import SimplifiedModel
from audio2blendshape.training.checkpoint import save_checkpoint
from audio2blendshape.training.config import load_config


def test_grads_prints_the_report_for_the_seeds_batch(tmp_path: Path):
    plot = tmp_path / "flow.png"
    result = run_cli("grads", "--plot", str(plot))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "batch mel (16, 300, 80) -> weights (16, 52)" in out
    for name, typical in (("blendshape_queries", "0.001-0.01"), ("decoder.6.weight", "0.01-0.1"),
                          ("audio_encoder.0.weight", "0.0001-0.001")):  # fmt: skip
        line = next(line for line in out.splitlines() if line.startswith(name + " "))
        assert typical in line and float(line.split()[2]) > 0
    assert "check_gradients findings" in out and "seed's estimate (params x 2 x 4 B)" in out
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_grads_on_a_checkpoint_of_another_rig(tmp_path: Path):
    config = load_config(None, ["simplified.d_model=32", "simplified.n_heads=2"])
    names = tuple(f"shape_{i}" for i in range(7))
    path = save_checkpoint(
        tmp_path / "ck.safetensors", SimplifiedModel(7, config.simplified), config, names, 3
    )
    result = run_cli("grads", str(path), "--batch", "2", "--frames", "40", "--plot", str(tmp_path / "f.png"))
    assert result.returncode == 0, result.stderr
    assert "weights (2, 7)" in result.stdout and "(step 3)" in result.stdout


def test_errors_are_one_line_with_the_file_named(tmp_path: Path):
    result = run_cli("grads", str(tmp_path / "missing.safetensors"))
    assert result.returncode == 2
    assert "missing.safetensors: no such checkpoint" in result.stderr and "Traceback" not in result.stderr
    result = run_cli("animate", str(tmp_path / "nothing.wav"))
    assert result.returncode == 2 and "nothing.wav" in result.stderr


def test_help_lists_every_command_without_importing_torch():
    import subprocess
    import sys

    code = (
        "import sys\nfrom audio2blendshape.cli.main import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('torch imported:', 'torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "torch imported: False" in result.stdout
    from audio2blendshape.cli.main import build_parser

    full = build_parser()._subparsers._group_actions[0].choices
    for command in full:
        assert f"    {command} " in result.stdout  # every real command is listed, with its help
    assert set(full) == set(build_parser("")._subparsers._group_actions[0].choices)


def test_animate_without_a_terminal_imports_no_progress_bar(tmp_path: Path):
    import subprocess
    import sys

    hello = str(Path(__file__).resolve().parents[2] / "examples" / "hello.wav")
    code = (
        "import sys\nfrom audio2blendshape.cli.main import main\n"
        f"assert main(['animate', {hello!r}, '-o', {str(tmp_path / 'a.csv')!r}]) == 0\n"
        "print('tqdm imported:', 'tqdm' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "tqdm imported: False" in result.stdout and (tmp_path / "a.csv").stat().st_size > 0


def test_each_command_parses_with_only_its_own_module(tmp_path: Path):
    result = run_cli("evaluate", "--help")
    assert result.returncode == 0 and "--split" in result.stdout
    result = run_cli("data", "stats", str(tmp_path / "missing"))
    assert result.returncode == 2 and "missing/names.txt" in result.stderr
