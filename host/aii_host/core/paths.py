# SPDX-License-Identifier: MIT
"""Where aii finds what it ships and keeps what it makes, in one place.

Run from a source checkout (make setup installs the package editable) it uses the checkout's
firmware/ and build/; installed from a wheel or an sdist, the firmware that travels inside the
package (aii_host/_firmware, copied from firmware/ when the package is built) and a per-user
cache ($XDG_CACHE_HOME/aii, else ~/.cache/aii). Environment variables override either.
"""

import os
from pathlib import Path

_PKG = Path(__file__).resolve().parents[1]  # aii_host/
_CHECKOUT = _PKG.parents[1]  # host/aii_host -> the repository, when this is a checkout
# The firmware packages a board runs: deploy copies them, a built package carries them
# (host/setup.py reads this line's module by path), vboard and demo run them.
FIRMWARE_PACKAGES = ("aii", "aii_node", "aii_nav")


def checkout():
    """The source checkout this package runs from (an editable install), or None."""
    if (_CHECKOUT / "firmware" / "aii_node").is_dir() and (
        _CHECKOUT / "host" / "aii_host"
    ).is_dir():
        return _CHECKOUT
    return None


def firmware_dir():
    """The folder holding firmware/aii and firmware/aii_node: $AII_FIRMWARE_DIR, else the
    checkout's firmware/, else the copy inside the installed package; None when none has it."""
    env = os.environ.get("AII_FIRMWARE_DIR")
    if env:
        return Path(env)
    root = checkout()
    if root is not None:
        return root / "firmware"
    shipped = _PKG / "_firmware"
    if all(
        (shipped / p / "main.py").is_file() or (shipped / p).is_dir() for p in FIRMWARE_PACKAGES
    ):
        return shipped
    return None


def user_cache():
    """This user's cache folder for aii: $XDG_CACHE_HOME/aii, else ~/.cache/aii."""
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "aii"


def build_dir():
    """Where generated files go: the checkout's build/, else the user cache."""
    root = checkout()
    return root / "build" if root is not None else user_cache()


def model_dir():
    """Where the face models are read from and `aii fetch-model` puts them: $AII_MODEL_DIR,
    else the checkout's build/models (make setup fills it), else the user cache's models/."""
    env = os.environ.get("AII_MODEL_DIR")
    if env:
        return Path(env)
    return build_dir() / "models"


def download_cache():
    """Where downloaded wheels are kept between runs (the models' source): build/cache in a
    checkout, else the user cache's downloads/."""
    root = checkout()
    return root / "build" / "cache" if root is not None else user_cache() / "downloads"
