import shutil

import pytest

from tests.serving import free_port, start_redis, stop_server


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


@pytest.fixture
def redis_url():
    """A redis-server of its own on a free loopback port (`make test` installs Debian's
    redis-server), stopped afterwards; yields its URL."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (make test installs it: apt-get install redis-server)")
    port = free_port()
    proc = start_redis(port)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop_server(proc)
