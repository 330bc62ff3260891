"""Run a command without a shell; its stdout lands in a wipeable buffer, its stderr on ours.

The output is read straight into a ``bytearray`` (``os.readv``), never into an
immutable ``bytes``, so the caller can wipe every copy of the key text. The
command gets ``/dev/null`` as stdin, our environment, and its own process
group, which is killed when the deadline passes or the caller is interrupted.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence

from keyloader.errors import ConfigError, InvalidMasterKeyError

from .errors import CommandFailedError, CommandTimeoutError

__all__ = ["MAX_OUTPUT", "run_command", "wipe"]

MAX_OUTPUT = 64 * 1024
"""More bytes than this on stdout is not a master key: the command is killed."""

_STDERR_CHUNK = 64 * 1024


def wipe(buffer: bytearray) -> None:
    """Overwrite ``buffer`` with zeros."""
    buffer[:] = bytes(len(buffer))


def run_command(argv: Sequence[str], *, timeout: float, label: str) -> bytearray:
    """Run ``argv`` and return what it printed on stdout, in a buffer the caller wipes.

    ``label`` names the command in messages (``command 'my-tool' (option 'argv'
    of provider 'command')``). Raises :class:`ConfigError` when the program
    cannot be started, :class:`CommandTimeoutError` after ``timeout`` seconds,
    :class:`CommandFailedError` on a non-zero exit or a signal, and
    :class:`InvalidMasterKeyError` when stdout exceeds :data:`MAX_OUTPUT`.
    """
    deadline = time.monotonic() + timeout
    process = _start(argv, label)
    buffer = bytearray(MAX_OUTPUT + 1)
    try:
        size = _pump(process, buffer, deadline, timeout, label)
        returncode = _wait(process, deadline, timeout, label)
    except BaseException:  # timeout, too much output, Ctrl-C: no process is left behind
        _kill(process)
        wipe(buffer)
        raise
    finally:
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()
    if returncode != 0:
        wipe(buffer)
        raise CommandFailedError(_failure_message(label, returncode), returncode=returncode)
    output = bytearray(size)
    output[:] = memoryview(buffer)[:size]
    wipe(buffer)
    return output


def _start(argv: Sequence[str], label: str) -> subprocess.Popen[bytes]:
    try:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            close_fds=True,
            process_group=0,
        )
    except FileNotFoundError:
        raise ConfigError(
            f"{label} was not found: give its absolute path or fix PATH (the command runs "
            f"without a shell, so shell built-ins, aliases and quoting do not apply)"
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"{label} cannot be started: {exc.strerror or type(exc).__name__}; check that it "
            f"is an executable file"
        ) from None


def _pump(
    process: subprocess.Popen[bytes],
    buffer: bytearray,
    deadline: float,
    timeout: float,
    label: str,
) -> int:
    """Read stdout into ``buffer`` and copy stderr to ``sys.stderr`` until both close."""
    import codecs
    import selectors

    stdout, stderr = process.stdout, process.stderr
    if stdout is None or stderr is None:  # pragma: no cover - both are PIPEs
        raise RuntimeError("the command's pipes were not created")
    out_fd, err_fd = stdout.fileno(), stderr.fileno()
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    size = 0
    with selectors.DefaultSelector() as selector, memoryview(buffer) as view:
        selector.register(out_fd, selectors.EVENT_READ)
        selector.register(err_fd, selectors.EVENT_READ)
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _timeout(label, timeout)
            for key, _ in selector.select(remaining):
                if key.fd == out_fd:
                    count = os.readv(out_fd, [view[size:]])
                    size += count
                    if size > MAX_OUTPUT:
                        raise InvalidMasterKeyError(
                            f"the output of {label} is larger than {MAX_OUTPUT} bytes, too "
                            f"large for a master key: the command must print only the "
                            f"base64 text form of the key"
                        )
                else:
                    count = len(chunk := os.read(err_fd, _STDERR_CHUNK))
                    _pass_through(decoder.decode(chunk, final=not count))
                if not count:
                    selector.unregister(key.fd)
    return size


def _wait(process: subprocess.Popen[bytes], deadline: float, timeout: float, label: str) -> int:
    try:
        return process.wait(timeout=max(deadline - time.monotonic(), 0.0))
    except subprocess.TimeoutExpired:
        raise _timeout(label, timeout) from None


def _kill(process: subprocess.Popen[bytes]) -> None:
    """Kill the command's process group (its children too) and reap it."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except OSError:  # the group is gone already
        process.kill()
    process.wait()


def _pass_through(text: str) -> None:
    """The command's stderr goes to ours (never into an error message)."""
    if not text:
        return
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except (OSError, ValueError):  # stderr closed: the diagnostics are lost, not the key
        pass


def _timeout(label: str, timeout: float) -> CommandTimeoutError:
    return CommandTimeoutError(
        f"{label} did not finish within {timeout:g} seconds and was killed: make it "
        f"faster, or raise option 'timeout' of provider 'command'"
    )


def _failure_message(label: str, returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"{label} was killed by {name}; its stderr, if any, is shown above"
    return (
        f"{label} failed with exit status {returncode}; its stderr, if any, is shown above. "
        f"Run the command yourself to see why"
    )
