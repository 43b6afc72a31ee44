"""Shared small worlds for the world tests: scale 0.05 makes ~8k documents in well under a second."""

import pytest

from alignlab.world import load_world

SMALL = {"scale": 0.05}


@pytest.fixture(scope="session")
def world():
    return load_world(overrides=SMALL)


@pytest.fixture(scope="session")
def documents(world):
    return world.documents(seed=0)
