"""Headless Chromium from Debian's packages, driven by Selenium through Debian's chromedriver.

No browser is ever downloaded: `ensure_chromium()` installs the `chromium` and `chromium-driver` apt
packages when they are missing (as root with apt-get, the way tests/cluster/slurm_cluster.sh installs
Slurm on a fresh CI machine) and otherwise says why the browser tests cannot run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
PACKAGES = ("chromium", "chromium-driver")


def ensure_chromium() -> str | None:
    """None when Debian's chromium + chromedriver are (now) installed, else the reason they are not."""
    if CHROMIUM.is_file() and CHROMEDRIVER.is_file():
        return None
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return (
            "Debian's chromium and chromium-driver are not installed and cannot be (needs root and apt-get)"
        )
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES]
    if subprocess.run(install, check=False, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update"], check=False, env=env, capture_output=True)
        proc = subprocess.run(install, check=False, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            return f"apt-get install {' '.join(PACKAGES)} failed: {proc.stderr[-500:]}"
    return None if CHROMIUM.is_file() and CHROMEDRIVER.is_file() else "chromium installed but not at /usr/bin"


def start_browser(width: int = 1280, height: int = 900):
    """A headless Chromium session (Selenium WebDriver)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={width},{height}",
        "--hide-scrollbars",
    ):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
