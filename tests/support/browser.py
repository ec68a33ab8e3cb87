"""A real browser for the dashboard's tests: Debian's Chromium, headless, driven through its own
chromedriver by Selenium (no driver downloaded: Selenium is given the packaged one). Installed by
the project's own script (hack/install-browser.sh) the first time a test asks for it.

Also `Dashboard`: `tandem dashboard --port 0` as a user starts it, its address read from the line
it prints. Screenshots go to `test-artifacts/` at the repository root (kept out of git), where CI
and a person can look at what the browser saw.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any, Iterator, Optional

from tests.conftest import REPO
from tests.support.commands import start_tandem
from tests.support.processes import stop_group
from tests.support.waiting import wait_for

ARTIFACTS = REPO / "test-artifacts"
URL = re.compile(r"Tandem dashboard: (http://127\.0\.0\.1:\d+/)")
#: Debian's Chromium binary (the package's wrapper script is /usr/bin/chromium).
CHROMIUM = "/usr/lib/chromium/chromium"


def chromedriver() -> str:
    """The packaged chromedriver's path, installing Chromium first when it is missing."""
    done = subprocess.run(["bash", str(REPO / "hack" / "install-browser.sh")], capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


def chromium(width: int = 1400, height: int = 1000) -> Any:
    """A headless Chromium session. As root (CI) it runs without its sandbox, which needs user
    namespaces that root in a container may not have; it only ever loads the test's own pages."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     f"--window-size={width},{height}", "--force-prefers-reduced-motion"):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(chromedriver()), options=options)


def screenshot(driver: Any, name: str, whole_page: bool = False) -> Path:
    """The window (or, `whole_page`, the window grown to the page's height) as test-artifacts/<name>.png."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    if whole_page:
        size = driver.get_window_size()
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(size["width"], min(int(height) + 140, 6000))
    driver.save_screenshot(str(path))
    return path


class Dashboard:
    """`tandem dashboard` in the background on a free port; stopped (its process group) on exit."""

    def __init__(self, *args: str, env: Optional[dict[str, str]] = None):
        self.args, self.env = args, env
        self.process: Optional[subprocess.Popen[str]] = None
        self.url = ""

    def __enter__(self) -> Dashboard:
        self.process = start_tandem("dashboard", "--port", "0", *self.args, env=self.env, start_new_session=True)
        self.url = wait_for("the dashboard's address", self._address, timeout=60, interval=0.1)
        return self

    def _address(self) -> str:
        assert self.process is not None and self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line and self.process.poll() is not None:
            raise AssertionError(f"tandem dashboard ended with {self.process.returncode}")
        match = URL.search(line)
        return match.group(1) if match else ""

    def __exit__(self, *exc: object) -> None:
        stop_group(self.process, grace=5)


def iter_rows(driver: Any) -> Iterator[dict[str, str]]:
    """The jobs table's rows as the browser renders them: header -> cell text."""
    from selenium.webdriver.common.by import By

    headers = [h.text for h in driver.find_elements(By.CSS_SELECTOR, "table.jobs thead th")]
    for tr in driver.find_elements(By.CSS_SELECTOR, "#rows tr"):
        cells = tr.find_elements(By.CSS_SELECTOR, "th, td")
        if len(cells) == len(headers):
            yield dict(zip(headers, (c.text for c in cells), strict=True))
