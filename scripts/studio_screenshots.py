"""Screenshots of the studio as a user sees it, to look at after changing the page or the head.

    .venv/bin/python scripts/studio_screenshots.py [--out /tmp/studio_shots] [--checkpoint B.safetensors]

Starts the real ``audio2blendshape studio examples/hello.wav`` (with ``--checkpoint`` as model B), drives
headless Chromium (Debian's chromium + chromium-driver, as the browser tests do) and writes:
``1_open_vowel.png`` (the widest jaw), ``2_closure.png`` (the firmest lip press with the jaw shut),
``3_ab.png`` (A/B of the bundled model and B, when given) and ``4_standalone.png`` (``preview --html``
opened from disk). Prints the curve values shown in each.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from selenium import webdriver

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from preview.studio_page import (  # noqa: E402  (the browser tests' page helpers)
    CHROMIUM,
    DRIVER,
    FLAGS,
    HELLO,
    open_and_closed_times,
    open_page,
    state_at,
    wait_for,
)

from audio2blendshape.runtime.animator import Animator  # noqa: E402


def shoot(driver: webdriver.Chrome, out: Path, name: str, t: float, b: bool = False) -> None:
    page = state_at(driver, t)
    driver.save_screenshot(str(out / f"{name}.png"))
    values = page["values"]
    line = (
        f"{name}: t={t:.2f} s jawOpen {values['jawOpen']:.3f} mouthPressLeft {values['mouthPressLeft']:.3f}"
    )
    if b:
        line += f" | B jawOpen {page['valuesB']['jawOpen']:.3f}"
    print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/studio_shots"), help="folder for the PNGs")
    parser.add_argument("--checkpoint", help="a second model for the A/B view")
    args = parser.parse_args()
    if not (CHROMIUM and DRIVER):
        sys.exit("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    args.out.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "audio2blendshape", "studio", str(HELLO), "--no-browser", "--port", "0"]
    if args.checkpoint:
        command += ["--checkpoint", args.checkpoint]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={tempfile.mkdtemp()}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=DRIVER))
    try:
        assert server.stdout is not None
        match = re.search(r"(http://\S+)", server.stdout.readline())
        if match is None:
            sys.exit("the studio did not say where it listens")
        open_page(driver, match.group(1))
        opened, closed = open_and_closed_times(Animator.load().animate(HELLO))
        shoot(driver, args.out, "1_open_vowel", opened)
        shoot(driver, args.out, "2_closure", closed)
        if args.checkpoint:
            b_name = driver.execute_script(
                "const o = document.getElementById('model-b').options; return o[o.length - 1].value"
            )
            driver.execute_script("return window.studio.setB(arguments[0])", b_name)
            wait_for(driver, "return window.studio.state().ab")
            shoot(driver, args.out, "3_ab", opened, b=True)
        page = args.out / "take.html"
        subprocess.run(
            [sys.executable, "-m", "audio2blendshape", "preview", str(HELLO), "--html", str(page)], check=True
        )
        open_page(driver, page.as_uri())
        shoot(driver, args.out, "4_standalone", opened)
    finally:
        driver.quit()
        server.terminate()


if __name__ == "__main__":
    main()
