# SPDX-License-Identifier: MIT
"""The one fixture every test tier's conftest takes from here: the host's audit key
(fleet/audit.py) and new node keys go to a folder of this test run, never into the user's
~/.config/aii/keys."""

import os

import pytest


@pytest.fixture(autouse=True, scope="session")
def keys_of_this_run(tmp_path_factory):
    old = os.environ.get("AII_KEYS_DIR")
    os.environ["AII_KEYS_DIR"] = str(tmp_path_factory.mktemp("keys"))
    yield
    if old is None:
        os.environ.pop("AII_KEYS_DIR", None)
    else:
        os.environ["AII_KEYS_DIR"] = old
