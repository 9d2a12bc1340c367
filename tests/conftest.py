import pytest


def pytest_addoption(parser):
    parser.addoption("--sweep", action="store_true", default=False,
                     help="run the long seed sweeps (nightly)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--sweep"):
        return
    skip = pytest.mark.skip(reason="long sweep: run with --sweep (make sweep)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
