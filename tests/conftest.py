"""Fixtures shared by the test packages."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture
def unwritable_folder(tmp_path: Path) -> Path:
    """A folder path the user may not create: below a read-only folder for a normal user; in sysfs
    for root (CI), where even root may not create folders."""
    if os.geteuid() == 0:
        return Path("/sys/paretofab_test") / tmp_path.name
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    return ro / "out"
