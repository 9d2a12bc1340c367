import pytest
from .test_chubby import test_a_reconnect_never_shows_an_empty_lock_table_for_the_moment_it_is_at as f
pytestmark = pytest.mark.browser
@pytest.mark.parametrize("i", range(4))
def test_rep(server, page, i):
    f(server, page)
