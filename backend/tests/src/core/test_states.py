from __future__ import annotations

import pytest

from backend.src.core.states import EngineState as S
from backend.src.core.states import InvalidTransition, check_transition


@pytest.mark.parametrize(
    ("old", "new"),
    [(None, S.STARTING), (S.STARTING, S.RUNNING), (S.RUNNING, S.CRASHED), (S.CRASHED, S.RESTARTING),
     (S.RESTARTING, S.RUNNING), (S.CRASHED, S.FAILED), (S.RUNNING, S.STOPPING), (S.STOPPING, S.STOPPED),
     (S.FAILED, S.STARTING), (S.STOPPED, S.STARTING)],
)
def test_allowed(old: S | None, new: S) -> None:
    assert check_transition(old, new) is new


@pytest.mark.parametrize(
    ("old", "new"),
    [(None, S.RUNNING), (S.FAILED, S.RUNNING), (S.STOPPED, S.RUNNING), (S.RUNNING, S.RESTARTING),
     (S.FAILED, S.RESTARTING), (S.STOPPED, S.CRASHED)],
)
def test_refused(old: S | None, new: S) -> None:
    with pytest.raises(InvalidTransition, match=new.value):
        check_transition(old, new)


def test_failed_is_permanent_until_operator_start() -> None:
    from backend.src.core.states import TRANSITIONS

    assert TRANSITIONS[S.FAILED] == {S.STARTING}
