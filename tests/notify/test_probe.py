"""`aiops notify --test`'s probe: one marked message through each channel of a route."""

from __future__ import annotations

import pytest

from aiops.config.notify import RouteConfig
from aiops.errors import PermanentError
from aiops.notify.probe import send_test


def test_an_unknown_route_is_a_permanent_error_that_names_the_routes() -> None:
    routes = [RouteConfig(name="pager", channels=["oncall"]), RouteConfig(name="chat", channels=["team"])]
    with pytest.raises(PermanentError) as caught:
        send_test({}, routes, "pagr")
    assert str(caught.value) == "no notify route named 'pagr' (routes: pager, chat)"
    assert "--route" in caught.value.hint
