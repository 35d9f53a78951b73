"""Fixtures of the studio's browser tests: one headless Chromium and one studio server per test module."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
from preview.studio_page import CHROMIUM, DRIVER, FLAGS, serving

from audio2blendshape.preview.studio_server import StudioHTTPServer
from audio2blendshape.preview.studio_store import BUNDLED, StudioStore


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (the dev extra)")
    if not CHROMIUM or not DRIVER:
        pytest.skip("chromium or chromedriver is not installed (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="a2b-chromium-")
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=DRIVER))
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StudioHTTPServer]:
    """The studio with the bundled model and examples/hello.wav as its first clip."""
    with serving(StudioStore(tmp_path_factory.mktemp("studio"), {BUNDLED: None})) as server:
        yield server
