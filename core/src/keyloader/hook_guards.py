"""Guards around hook implementations, so one plugin's failure stays its own.

keyloader calls every hook through pluggy (``pm.hook.<name>(...)``): wrappers
of both styles, ``tryfirst``/``trylast``, tracing and monitoring behave as
pluggy documents. Isolation happens one level down: when a plugin registers,
the plugin manager replaces the function of each of its implementations of a
keyloader hook with a guard from :func:`guard`. A guard never lets an
``Exception`` escape into pluggy's hook loop; it hands it to the manager's
``on_error`` (a recorded plugin failure, or a logged observer failure) and
gives pluggy what the hook would have had without that implementation.

- A plain implementation that raises contributes nothing (``None``).
- A wrapper that raises before its ``yield`` is skipped: the call goes on
  without it. One that raises after its ``yield`` (or yields twice, or never)
  leaves the result it was given unchanged.
- ``check`` (class-listing hooks) validates what an implementation returned,
  or what a wrapper turned the result into; a bad value is that plugin's
  failure and is dropped.
- ``once`` (class-listing hooks) makes a plain implementation run at most once:
  later calls of the hook get the first answer again.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Generator, Mapping
from typing import Any

import pluggy

__all__ = ["Check", "OnError", "guard", "is_guarded"]

OnError = Callable[[str, Exception, Mapping[str, Any]], None]
"""``on_error(plugin, exc, arguments)``: the plugin name, what its implementation raised,
and the hook arguments it was called with (by name)."""

Check = Callable[[str, Any, Any], Any]
"""``check(plugin, before, after)``: validate ``after`` (``before`` is None for plain
implementations, the result a wrapper was given otherwise); return the value to use."""

_GUARD_MARK = "__keyloader_guard__"
_Failed = Callable[[Exception, tuple[Any, ...], Mapping[str, Any]], None]


def is_guarded(impl: pluggy.HookImpl) -> bool:
    """Whether ``impl``'s function is already a keyloader guard."""
    return bool(getattr(impl.function, _GUARD_MARK, False))


def guard(
    impl: pluggy.HookImpl, on_error: OnError, *, check: Check | None = None, once: bool = False
) -> None:
    """Replace ``impl.function`` with a guard (see the module docstring). Idempotent."""
    if is_guarded(impl):
        return
    function = impl.function
    plugin = impl.plugin_name
    argnames = impl.argnames

    def failed(exc: Exception, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
        on_error(plugin, exc, {**dict(zip(argnames, args, strict=False)), **kwargs})

    if impl.hookwrapper:
        guarded = _old_style_wrapper(function, plugin, failed, check)
    elif impl.wrapper:
        guarded = _wrapper(function, plugin, failed, check)
    else:
        guarded = _plain(function, plugin, failed, check, once)
    setattr(guarded, _GUARD_MARK, True)
    setattr(impl, "function", guarded)  # noqa: B010 - pluggy types it Final; the slot is writable


def _plain(
    function: Callable[..., Any], plugin: str, failed: _Failed, check: Check | None, once: bool
) -> Callable[..., Any]:
    answered: list[Any] = []

    @functools.wraps(function)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if answered:
            return answered[0]
        try:
            value = function(*args, **kwargs)
            if check is not None:
                value = check(plugin, None, value)
        except Exception as exc:
            failed(exc, args, kwargs)
            value = None
        if once:
            answered.append(value)
        return value

    return guarded


def _wrapper(
    function: Callable[..., Any], plugin: str, failed: _Failed, check: Check | None
) -> Callable[..., Generator[None, Any, Any]]:
    @functools.wraps(function)
    def guarded(*args: Any, **kwargs: Any) -> Generator[None, Any, Any]:
        try:
            teardown = function(*args, **kwargs)
            next(teardown)
        except StopIteration:
            failed(RuntimeError("wrapper did not yield"), args, kwargs)
            return (yield)
        except Exception as exc:
            failed(exc, args, kwargs)
            return (yield)
        try:
            before = yield
        except BaseException as exc:  # not from a guarded implementation: let the wrapper see it
            try:
                teardown.throw(exc)
            except StopIteration as stop:
                return stop.value
            teardown.close()
            raise
        try:
            teardown.send(before)
        except StopIteration as stop:
            after = stop.value
        except Exception as exc:
            failed(exc, args, kwargs)
            return before
        else:
            teardown.close()
            failed(RuntimeError("wrapper has a second yield"), args, kwargs)
            return before
        if check is None:
            return after
        try:
            return check(plugin, before, after)
        except Exception as exc:
            failed(exc, args, kwargs)
            return before

    return guarded


def _old_style_wrapper(
    function: Callable[..., Any], plugin: str, failed: _Failed, check: Check | None
) -> Callable[..., Generator[None, Any, None]]:
    @functools.wraps(function)
    def guarded(*args: Any, **kwargs: Any) -> Generator[None, Any, None]:
        try:
            teardown = function(*args, **kwargs)
            next(teardown)
        except StopIteration:
            failed(RuntimeError("hookwrapper did not yield"), args, kwargs)
            yield
            return
        except Exception as exc:
            failed(exc, args, kwargs)
            yield
            return
        outcome: pluggy.Result[Any] = yield
        raised = outcome.exception is not None
        before = None if raised else outcome.get_result()
        try:
            teardown.send(outcome)
        except StopIteration:
            pass
        except Exception as exc:
            failed(exc, args, kwargs)
            if not raised:
                outcome.force_result(before)
            return
        else:
            teardown.close()
            failed(RuntimeError("hookwrapper has a second yield"), args, kwargs)
            if not raised:
                outcome.force_result(before)
            return
        if check is not None and outcome.exception is None:
            try:
                outcome.force_result(check(plugin, before, outcome.get_result()))
            except Exception as exc:
                failed(exc, args, kwargs)
                outcome.force_result(before)

    return guarded
