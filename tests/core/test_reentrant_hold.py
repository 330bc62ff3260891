"""``keyloader.stores.ReentrantHold``: the writer-lock bookkeeping a store with an outer lock
subclasses, under its public method names; a subclass written against the names before 0.2
still works, with a deprecation warning (an error under ``deprecations_as_errors``)."""

from __future__ import annotations

import pytest

from keyloader.errors import KeyloaderDeprecationWarning
from keyloader.stores import ReentrantHold
from keyloader.testing import deprecations_as_errors


class Counting(ReentrantHold):
    def __init__(self) -> None:
        super().__init__(timeout=1.0)
        self.events: list[str] = []

    def take_outer(self, deadline: float) -> None:
        self.events.append("take")

    def release_outer(self) -> None:
        self.events.append("release")

    def busy_message(self) -> str:
        return "busy"


class OldNames(ReentrantHold):
    """A store's lock as 0.1's docs showed it."""

    def __init__(self) -> None:
        super().__init__(timeout=1.0)
        self.events: list[str] = []

    def _take(self, deadline: float) -> None:
        self.events.append("take")

    def _let_go(self) -> None:
        self.events.append("release")

    def _busy_message(self) -> str:
        return "busy"


def test_the_outer_lock_is_taken_once_for_nested_holds() -> None:
    lock = Counting()
    with lock.hold():
        with lock.hold():
            assert lock.held
    assert lock.events == ["take", "release"]
    assert not lock.held


def test_the_names_before_0_2_warn_and_still_work() -> None:
    lock = OldNames()
    with pytest.warns(KeyloaderDeprecationWarning) as caught, lock.hold():
        pass
    assert lock.events == ["take", "release"]
    messages = [str(warning.message) for warning in caught]
    assert any("OldNames._take() is deprecated" in m and "take_outer()" in m for m in messages)
    assert any("OldNames._let_go() is deprecated" in m and "release_outer()" in m for m in messages)
    with deprecations_as_errors(), pytest.raises(KeyloaderDeprecationWarning):
        with lock.hold():
            pass


def test_a_subclass_without_the_methods_says_which_to_write() -> None:
    class Nothing(ReentrantHold):
        pass

    with pytest.raises(NotImplementedError, match=r"Nothing must implement take_outer\(\)"):
        with Nothing(1.0).hold():
            pass
