"""Secret pages: slots are private, wiped, locked, out of core dumps and of forked children."""

from __future__ import annotations

import ctypes
import errno
import itertools
import json
import logging
import os
import random
import secrets
import struct
import subprocess
import sys
import textwrap
import threading
import traceback
from collections.abc import Callable, Iterator

import pytest

from keyloader import secret_mappings, secret_pages
from keyloader.errors import ConfigError
from keyloader.secret_pages import ENV_VAR, MODES, PageAllocator, SecretMemoryError

from ..memscan import Mapping, push_registers, python_child, read_mappings, scan

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="secret pages are Linux pages")


def _secret_available() -> bool:
    try:
        PageAllocator("secret").mode()
    except SecretMemoryError:
        return False
    return True


SECRET_AVAILABLE = _secret_available()
needs_secret = pytest.mark.skipif(not SECRET_AVAILABLE, reason="no memfd_secret on this kernel")
WORDS = {
    "memfd_secret": "secret",
    "locked": "locked",
    "unlocked": "unlocked",
    "ordinary": "ordinary",
}
FLAGS = {  # VmFlags each mode must show, and must not
    "memfd_secret": ({"dd", "lo", "sh"}, {"wf"}),
    "locked": ({"dd", "lo", "wf"}, {"sh"}),
    "unlocked": ({"dd", "wf"}, {"lo", "sh"}),
    "ordinary": (set(), {"dd", "lo", "wf"}),
}
INHERITED_FLAGS = {  # the same for slots a forked child keeps: no MADV_WIPEONFORK
    "memfd_secret": ({"dd", "lo", "sh"}, {"wf"}),
    "locked": ({"dd", "lo"}, {"sh", "wf"}),
    "unlocked": ({"dd"}, {"lo", "sh", "wf"}),
    "ordinary": (set(), {"dd", "lo", "wf"}),
}


@pytest.fixture(params=MODES)
def allocator(request: pytest.FixtureRequest) -> PageAllocator:
    mode: str = request.param
    if mode == "memfd_secret" and not SECRET_AVAILABLE:
        pytest.skip("no memfd_secret on this kernel")
    allocator = PageAllocator(WORDS[mode])
    assert allocator.mode() == mode
    return allocator


def address_of(view: memoryview) -> int:
    holder = ctypes.c_char.from_buffer(view)
    address = ctypes.addressof(holder)
    del holder  # only the address was wanted
    return address


def fd_targets() -> list[str]:
    """What the open descriptors of this process point to."""
    targets = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            targets.append(os.readlink(f"/proc/self/fd/{fd}"))
        except FileNotFoundError:  # the descriptor listdir used
            continue
    return targets


def mapping_at(address: int, pid: int | str = "self") -> Mapping:
    pid = os.getpid() if pid == "self" else int(pid)
    (found,) = [m for m in read_mappings(pid) if m.start <= address < m.end]
    return found


def inode_at(address: int) -> int:
    """The inode of the file mapped at ``address`` in this process (0: anonymous)."""
    with open("/proc/self/maps") as maps:
        for line in maps:
            span, _, _, _, inode = line.split()[:5]
            start, end = (int(x, 16) for x in span.split("-"))
            if start <= address < end:
                return int(inode)
    raise LookupError(f"nothing mapped at {address:#x}")


def flags_problem(
    view: memoryview, expected: dict[str, tuple[set[str], set[str]]], mode: str
) -> str:
    flags = mapping_at(address_of(view)).vmflags
    must, must_not = expected[mode]
    if must <= flags and not must_not & flags:
        return ""
    return f"{mode} flags of a {len(view)}-byte slot: {sorted(flags)}"


# --- slots ---------------------------------------------------------------------------

SIZES = [1, 16, 31, 32, 33, 64, 100, 1000, 4096, 8192, 8193, 70000]


def test_slots_are_writable_independent_and_wiped_on_release(allocator: PageAllocator) -> None:
    views = [allocator.allocate(size) for size in SIZES]
    patterns = [secrets.token_bytes(size) for size in SIZES]
    for view, size in zip(views, SIZES, strict=True):
        assert (view.format, view.ndim, view.c_contiguous, view.readonly) == ("B", 1, True, False)
        assert len(view) == view.nbytes == size
        assert not any(view), "a new slot reads as zeroes"
    for view, pattern in zip(views, patterns, strict=True):
        view[:] = pattern
    spans = sorted((address_of(v), address_of(v) + len(v)) for v in views)
    assert all(end <= start for (_, end), (start, _) in itertools.pairwise(spans))
    for view, pattern in zip(views, patterns, strict=True):
        assert bytes(view) == pattern, "a slot was overwritten through another"

    for view, size in zip(views, SIZES, strict=True):
        address, keep = address_of(view), view[:]  # keep: a derived view outlives release
        allocator.release(view)
        with pytest.raises(ValueError, match="released"):
            bytes(view)
        assert bytes(keep) == bytes(size)
        if size <= 8192:  # an arena slot: read the arena itself
            assert ctypes.string_at(address, size) == bytes(size)
    assert allocator.stats().slots_in_use == 0


def test_release_wipes_the_whole_slot_and_reuses_it(allocator: PageAllocator) -> None:
    view = allocator.allocate(20)
    address = address_of(view)
    slot = ctypes.string_at  # read all 32 bytes of the slot, past the 20 of the view
    ctypes.memset(address, 0x5A, 32)
    assert slot(address, 32) == b"\x5a" * 32
    allocator.release(view)
    assert slot(address, 32) == bytes(32)
    again = allocator.allocate(32)
    assert address_of(again) == address
    assert bytes(again) == bytes(32)
    allocator.release(again)


def test_inherited_slots_have_mappings_and_free_lists_of_their_own(
    allocator: PageAllocator,
) -> None:
    mode = allocator.mode()
    wiped, kept = allocator.allocate(32), allocator.allocate(32, inherit=True)
    large = allocator.allocate(50_000, inherit=True)
    regions = allocator.stats().regions
    for view, inherited in ((wiped, False), (kept, True), (large, True)):
        address = address_of(view)
        found = [r for r in regions if r.address <= address < r.address + r.length]
        if mode == "ordinary" and view is large:  # a bytearray of its own: not a region
            assert found == []
            continue
        (region,) = found
        assert (region.mode, region.inherited) == (mode, inherited)
    assert flags_problem(wiped, FLAGS, mode) == ""
    assert flags_problem(kept, INHERITED_FLAGS, mode) == ""
    assert flags_problem(large, INHERITED_FLAGS, mode) == ""

    address = address_of(kept)
    ctypes.memset(address, 0x5A, 32)
    allocator.release(kept)
    assert ctypes.string_at(address, 32) == bytes(32)
    other = allocator.allocate(32)
    assert address_of(other) != address, "a slot wiped on fork took an inherited slot"
    again = allocator.allocate(32, inherit=True)
    assert address_of(again) == address
    assert bytes(again) == bytes(32)
    for view in (wiped, large, other, again):
        allocator.release(view)
    assert allocator.stats().slots_in_use == 0


def test_edge_cases() -> None:
    allocator = PageAllocator("auto")
    empty = allocator.allocate(0)
    assert (len(empty), empty.format, empty.readonly) == (0, "B", False)
    allocator.release(empty)
    allocator.release(empty)

    view = allocator.allocate(32)
    with pytest.raises(ValueError, match="allocate"):
        allocator.release(view[:16])  # a derived view is not the slot
    with pytest.raises(ValueError, match="allocate"):
        allocator.release(memoryview(bytearray(32)))
    with pytest.raises(ValueError, match="allocate"):
        PageAllocator("auto").release(view)  # another allocator's slot
    allocator.release(view)
    allocator.release(view)  # a second release is ignored
    assert allocator.stats().slots_in_use == 0

    with pytest.raises(ValueError, match="negative"):
        allocator.allocate(-1)
    with pytest.raises(TypeError):
        allocator.allocate(True)
    with pytest.raises(TypeError):
        allocator.allocate(32.0)  # type: ignore[arg-type]


def test_a_held_buffer_keeps_the_view_but_the_slot_is_wiped() -> None:
    allocator = PageAllocator("auto")
    view = allocator.allocate(32)
    view[:] = b"k" * 32
    holder = struct.iter_unpack("B", view)  # holds a buffer of the view itself
    allocator.release(view)  # cannot release the view, wipes the slot all the same
    assert bytes(view) == bytes(32)
    assert [n for (n,) in holder] == [0] * 32


@pytest.mark.parametrize("inherit", [False, True])
def test_a_large_mapping_goes_once_released_and_unreferenced(inherit: bool) -> None:
    allocator = PageAllocator("auto")
    allocator.mode()
    arenas = len(allocator.stats().regions)
    view = allocator.allocate(100_000, inherit=inherit)
    (large,) = allocator.stats().regions[arenas:]
    assert (large.length, large.inherited) == (102_400, inherit)
    keep = view.toreadonly()
    allocator.release(view)
    assert len(allocator.stats().regions) == arenas + 1, "a derived view keeps it mapped"
    assert bytes(keep) == bytes(100_000)
    keep.release()
    assert len(allocator.stats().regions) == arenas
    assert not [m for m in read_mappings(os.getpid()) if m.start == large.address]


def test_many_slots_share_few_arenas() -> None:
    allocator = PageAllocator("auto")
    views = [allocator.allocate(32) for _ in range(1000)]
    stats = allocator.stats()
    assert (stats.slots_in_use, stats.bytes_in_use) == (1000, 32_000)
    assert len(stats.regions) == 2  # 512 slots of 32 bytes in each 16 KiB arena
    for view in views:
        allocator.release(view)
    assert len(allocator.stats().regions) == 2


def test_threads_never_share_a_slot() -> None:
    allocator = PageAllocator("auto")
    failures: list[str] = []
    live: dict[int, int] = {}  # start -> end of every live slot
    live_lock = threading.Lock()

    def work(seed: int) -> None:
        rng = random.Random(seed)
        mine: list[tuple[memoryview, bytes, int]] = []
        for step in range(1600):
            hoarding = step < 500  # carve new slots first, then mostly reuse freed ones
            if mine and not hoarding and (len(mine) > 12 or rng.random() < 0.45):
                view, pattern, start = mine.pop(rng.randrange(len(mine)))
                if bytes(view) != pattern:
                    failures.append(f"slot at {start:#x} was overwritten")
                with live_lock:
                    del live[start]
                allocator.release(view)
            else:
                size = rng.choice([1, 24, 32, 48, 100, 600, 3000, 9000][: 3 if hoarding else 8])
                view = allocator.allocate(size, inherit=rng.random() < 0.5)  # one lock for both
                pattern = rng.randbytes(size)
                view[:] = pattern
                start = address_of(view)
                with live_lock:
                    clash = [s for s, e in live.items() if s < start + size and start < e]
                    live[start] = start + size
                if clash:
                    failures.append(f"slot at {start:#x} overlaps {clash}")
                mine.append((view, pattern, start))
        for view, _, start in mine:
            with live_lock:
                del live[start]
            allocator.release(view)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(8)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert failures == []
    assert allocator.stats().slots_in_use == 0


# --- pages ---------------------------------------------------------------------------


def test_the_pages_carry_the_flags_of_their_mode(allocator: PageAllocator) -> None:
    mode = allocator.mode()
    small, large = allocator.allocate(32), allocator.allocate(50_000)
    must, must_not = FLAGS[mode]
    for view in (small, large):
        mapping = mapping_at(address_of(view))
        assert must <= mapping.vmflags, (mode, str(mapping))
        assert not must_not & mapping.vmflags, (mode, str(mapping))
        if mode == "memfd_secret":
            assert "secretmem" in mapping.pathname
    for view in (small, large):
        allocator.release(view)


@needs_secret
def test_no_descriptor_of_the_secret_pages_stays_open() -> None:
    allocator = PageAllocator("secret")
    views = [allocator.allocate(size) for size in (32, 50_000)]
    assert not [target for target in fd_targets() if "secretmem" in target]
    for view in views:
        allocator.release(view)


# --- child processes -------------------------------------------------------------------

PRELUDE = textwrap.dedent(
    """
    import ctypes, json, logging, os, resource, signal, sys
    from keyloader import secret_mappings, secret_pages

    def flags_at(address):
        mappings, flags = open("/proc/self/smaps").read().splitlines(), None
        for line in mappings:
            if "-" in line.split(" ")[0] and not line.startswith("VmFlags"):
                start, end = (int(x, 16) for x in line.split(" ")[0].split("-"))
                inside = start <= address < end
            elif line.startswith("VmFlags") and inside:
                return sorted(line.split()[1:])

    def address_of(view):
        return ctypes.addressof(ctypes.c_char.from_buffer(view))

    def drop_ipc_lock():
        # root (CAP_IPC_LOCK) may lock past RLIMIT_MEMLOCK: drop the capability first
        class Header(ctypes.Structure):
            _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]
        class Data(ctypes.Structure):
            _fields_ = [(n, ctypes.c_uint32) for n in ("effective", "permitted", "inheritable")]
        libc = ctypes.CDLL(None, use_errno=True)
        header, data = Header(0x20080522, 0), (Data * 2)()
        assert libc.capget(ctypes.byref(header), data) == 0
        data[0].effective &= ~(1 << 14)
        data[0].permitted &= ~(1 << 14)
        assert libc.capset(ctypes.byref(header), data) == 0
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (0, 0))

    warnings = []
    class Collect(logging.Handler):
        def emit(self, record):
            if record.levelno >= logging.WARNING:
                warnings.append(record.getMessage())
    logging.getLogger("keyloader.memory").addHandler(Collect())

    def emit(**values):
        print(json.dumps(values), flush=True)
    """
)


def child_env(word: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    if word is not None:
        env[ENV_VAR] = word
    return env


def run_child(code: str, word: str | None = None) -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(code)],
        env=child_env(word),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, object] = json.loads(proc.stdout.splitlines()[-1])
    return result


MODE_PROBE = """
view = secret_pages.allocate(32)
emit(mode=secret_pages.memory_mode(), text=secret_pages.describe_memory(),
     flags=flags_at(address_of(view)), warnings=warnings)
"""


@pytest.mark.parametrize(
    ("word", "mode"),
    [
        (None, "memfd_secret" if SECRET_AVAILABLE else "locked"),
        ("auto", "memfd_secret" if SECRET_AVAILABLE else "locked"),
        pytest.param("secret", "memfd_secret", marks=needs_secret),
        ("locked", "locked"),
        (" Unlocked ", "unlocked"),
        ("ordinary", "ordinary"),
    ],
)
def test_the_environment_chooses_the_mode(word: str | None, mode: str) -> None:
    result = run_child(MODE_PROBE, word)
    assert result["mode"] == mode
    assert str(result["text"]).startswith(f"{mode}: ")
    must, must_not = FLAGS[mode]
    flags = set(result["flags"])  # type: ignore[call-overload]
    assert must <= flags
    assert not must_not & flags
    assert result["warnings"] == []


def test_a_wrong_word_is_a_config_error() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", "from keyloader import secret_pages; secret_pages.allocate(1)"],
        env=child_env("fast"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert "ConfigError" in proc.stderr
    assert f"{ENV_VAR}='fast'" in proc.stderr


SECRET_HOLDER = """
signal.signal(signal.SIGUSR1, lambda *_: None)
view = secret_pages.allocate(32)
x = int(sys.argv[1])
for i in range(32):  # byte by byte: no other object ever holds the pattern
    x = (x * 6364136223846793005 + 1442695040888963407) % 2**64
    view[i] = x >> 56
emit(mode=secret_pages.memory_mode(), address=address_of(view))
sys.stdin.readline()
"""


def lcg_pattern(seed: int) -> bytes:
    out, x = bytearray(), seed
    for _ in range(32):
        x = (x * 6364136223846793005 + 1442695040888963407) % 2**64
        out.append(x >> 56)
    return bytes(out)


@pytest.fixture
def holder(request: pytest.FixtureRequest) -> Iterator[tuple[int, int, bytes]]:
    """A child holding a pattern in a slot of mode ``request.param``: (pid, address, pattern)."""
    seed = secrets.randbits(64)
    code = PRELUDE + textwrap.dedent(SECRET_HOLDER)
    with python_child(code, str(seed), env=child_env(request.param)) as proc:
        assert proc.stdout is not None
        started = json.loads(proc.stdout.readline())
        assert started["mode"] == {"secret": "memfd_secret"}.get(request.param, request.param)
        yield proc.pid, started["address"], lcg_pattern(seed)


@needs_secret
@pytest.mark.parametrize("holder", ["secret"], indirect=True)
def test_root_cannot_read_memfd_secret_pages_of_a_child(holder: tuple[int, int, bytes]) -> None:
    pid, address, pattern = holder
    push_registers(pid)
    mem = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
    try:
        with pytest.raises(OSError) as caught:
            os.pread(mem, 32, address)
    finally:
        os.close(mem)
    assert caught.value.errno == errno.EIO
    result = scan(pid, {"key": pattern})
    assert result.count("key") == 0, result.where("key")
    assert [m for m in result.unreadable if "secretmem" in m.pathname]


@pytest.mark.parametrize("holder", ["locked"], indirect=True)
def test_root_reads_locked_pages_of_a_child_but_no_core_would(
    holder: tuple[int, int, bytes],
) -> None:
    """The control of the test above: the same read and scan find the key here."""
    pid, address, pattern = holder
    push_registers(pid)
    mem = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
    try:
        assert os.pread(mem, 32, address) == pattern
    finally:
        os.close(mem)
    result = scan(pid, {"key": pattern})
    assert result.count("key") == 1, result.where("key")
    assert result.core_count("key") == 0, result.where("key")


RLIMIT_PROBE = """
drop_ipc_lock()
views = [secret_pages.allocate(32) for _ in range(3000)]  # six arenas
views += [secret_pages.allocate(20_000) for _ in range(4)]
emit(mode=secret_pages.memory_mode(), text=secret_pages.describe_memory(),
     flags=flags_at(address_of(views[0])), large=flags_at(address_of(views[-1])),
     regions=len(secret_pages.stats().regions), warnings=warnings)
"""


@pytest.mark.parametrize("word", ["auto", "unlocked"])
def test_without_rlimit_memlock_pages_are_unlocked_with_one_warning(word: str) -> None:
    result = run_child(RLIMIT_PROBE, word)
    assert result["mode"] == "unlocked"
    assert result["regions"] == 10
    for flags in (result["flags"], result["large"]):
        assert {"dd", "wf"} <= set(flags)  # type: ignore[call-overload]
        assert "lo" not in flags  # type: ignore[operator]
    warnings = result["warnings"]
    if word == "unlocked":  # asked for: nothing to warn about
        assert warnings == []
        return
    assert isinstance(warnings, list)
    assert len(warnings) == 1
    assert "RLIMIT_MEMLOCK" in warnings[0]
    assert "ulimit -l" in warnings[0]
    assert "swapped" in warnings[0]
    assert "RLIMIT_MEMLOCK" in str(result["text"])


@pytest.mark.parametrize("word", ["locked", pytest.param("secret", marks=needs_secret)])
def test_without_rlimit_memlock_a_demanded_mode_is_an_error(word: str) -> None:
    result = run_child(
        """
        drop_ipc_lock()
        try:
            secret_pages.allocate(32)
        except secret_pages.SecretMemoryError as exc:
            emit(error=str(exc), text=secret_pages.describe_memory())
        """,
        word,
    )
    assert f"{ENV_VAR}={word}" in str(result["error"])
    assert str(result["text"]).startswith("unavailable: ")


def test_auto_falls_back_when_memfd_secret_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def refuse(length: int, address: int | None = None) -> int:
        calls.append(length)
        raise OSError(errno.ENOSYS, "memfd_secret: Function not implemented")

    monkeypatch.setattr(secret_mappings, "map_secret", refuse)
    allocator = PageAllocator("auto")
    views = [allocator.allocate(4000) for _ in range(10)]
    assert allocator.mode() == "locked"
    assert len(calls) == 1, "ENOSYS is not tried again"
    assert "memfd_secret: Function not implemented" in allocator.describe()
    with pytest.raises(SecretMemoryError, match="memfd_secret"):
        PageAllocator("secret").allocate(1)
    for view in views:
        allocator.release(view)


def test_a_refused_lock_warns_once_per_process(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(address: int, length: int) -> None:
        raise OSError(errno.EPERM, "mlock: Operation not permitted")

    def no_secret(length: int, address: int | None = None) -> int:
        raise OSError(errno.ENOSYS, "memfd_secret: Function not implemented")

    monkeypatch.setattr(secret_mappings, "mlock", refuse)
    monkeypatch.setattr(secret_pages, "_warned", [])
    caplog.set_level(logging.WARNING, logger="keyloader.memory")
    allocators = [PageAllocator("locked"), PageAllocator("auto"), PageAllocator("auto")]
    with pytest.raises(SecretMemoryError, match="RLIMIT_MEMLOCK"):
        allocators[0].allocate(32)
    monkeypatch.setattr(secret_mappings, "map_secret", no_secret)
    for allocator in allocators[1:]:
        for size in (32, 5000, 50_000):
            allocator.allocate(size)
        assert allocator.mode() == "unlocked"
    assert len(caplog.records) == 1
    assert "Operation not permitted" in caplog.records[0].getMessage()


# --- fork ------------------------------------------------------------------------------


def forked(check: Callable[..., str], *args: object) -> str:
    """Run ``check(*args)`` in a forked child; its report ("" when all is well)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        status = 1
        try:
            os.close(read_end)
            try:
                report = check(*args) or "ok"
                status = 0
            except BaseException:
                report = traceback.format_exc()
            os.write(write_end, report.encode())
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        report = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, report
    return "" if report == "ok" else report


def child_sees_zeroes_and_owns_its_pages(allocator: PageAllocator, views: list[memoryview]) -> str:
    problems = []
    mode = allocator.mode()
    for view in views:
        if any(view):
            problems.append(f"a {len(view)}-byte slot is not zero in the child")
        view[:] = b"c" * len(view)  # must not reach the parent
        flags = mapping_at(address_of(view)).vmflags
        must, must_not = FLAGS[mode]
        if not must <= flags or must_not & flags:
            problems.append(f"{mode} flags in the child: {sorted(flags)}")
    if [target for target in fd_targets() if "secretmem" in target]:
        problems.append("the child holds a descriptor of secret pages")
    for view in views:
        allocator.release(view)
    fresh = allocator.allocate(32)
    fresh[:] = b"f" * 32
    allocator.release(fresh)
    if allocator.stats().slots_in_use:
        problems.append("bookkeeping is off in the child")
    return "; ".join(problems)


def test_a_forked_child_sees_zeroes_and_cannot_touch_the_parent(
    allocator: PageAllocator,
) -> None:
    views = [allocator.allocate(size) for size in (32, 3000, 50_000)]
    patterns = [secrets.token_bytes(len(view)) for view in views]
    for view, pattern in zip(views, patterns, strict=True):
        view[:] = pattern
    assert forked(child_sees_zeroes_and_owns_its_pages, allocator, views) == ""
    for view, pattern in zip(views, patterns, strict=True):
        assert bytes(view) == pattern, "the child wrote into the parent's slot"
        allocator.release(view)


def child_keeps_inherited_slots(
    allocator: PageAllocator,
    wiped: list[memoryview],
    inherited: list[memoryview],
    patterns: list[bytes],
    mode: str,
    parent_inodes: list[int],
) -> str:
    """In the child: wiped slots read zeroes, inherited ones their pattern, in pages that
    are not the parent's; then the child writes them all."""
    problems = [flags_problem(view, FLAGS, mode) for view in wiped]
    problems += [f"a {len(v)}-byte slot is not zero in the child" for v in wiped if any(v)]
    for view, pattern, inode in zip(inherited, patterns, parent_inodes, strict=True):
        if bytes(view) != pattern:
            problems.append(f"a {len(view)}-byte inherited slot lost its content")
        problems.append(flags_problem(view, INHERITED_FLAGS, mode))
        if mode == "memfd_secret" and inode_at(address_of(view)) == inode:
            problems.append(f"the child maps its parent's memfd_secret file {inode}")
    if [target for target in fd_targets() if "secretmem" in target]:
        problems.append("the child holds a descriptor of secret pages")
    for view in [*wiped, *inherited]:
        view[:] = b"c" * len(view)  # must not reach the parent
    address = address_of(inherited[0])
    for view in [*wiped, *inherited]:
        allocator.release(view)
    if ctypes.string_at(address, 32) != bytes(32):
        problems.append("release() left an inherited slot unwiped")
    fresh = allocator.allocate(32, inherit=True)
    if address_of(fresh) != address or any(fresh):
        problems.append("the inherited slot was not reused, or not zero")
    allocator.release(fresh)
    if allocator.stats().slots_in_use:
        problems.append("bookkeeping is off in the child")
    return "; ".join(p for p in problems if p)


def fork_with_inherited_slots(allocator: PageAllocator, child_mode: str) -> None:
    sizes = (32, 3000, 50_000)
    wiped = [allocator.allocate(size) for size in sizes]
    inherited = [allocator.allocate(size, inherit=True) for size in sizes]
    patterns = [secrets.token_bytes(size) for size in sizes]
    for view, pattern in zip([*wiped, *inherited], patterns * 2, strict=True):
        view[:] = pattern
    inodes = [inode_at(address_of(view)) for view in inherited]
    check = child_keeps_inherited_slots
    assert forked(check, allocator, wiped, inherited, patterns, child_mode, inodes) == ""
    for view, pattern in zip([*wiped, *inherited], patterns * 2, strict=True):
        assert bytes(view) == pattern, "the child wrote into the parent's slot"
    assert [inode_at(address_of(view)) for view in inherited] == inodes
    for view in [*wiped, *inherited]:
        allocator.release(view)


def test_a_forked_child_keeps_inherited_slots_in_pages_of_its_own(
    allocator: PageAllocator,
) -> None:
    fork_with_inherited_slots(allocator, allocator.mode())


@needs_secret
def test_a_child_refused_memfd_secret_keeps_inherited_slots_in_locked_pages(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(address: int, length: int, *, keep: bool = False) -> None:
        raise OSError(errno.ENOMEM, "memfd_secret: Cannot allocate memory")

    allocator = PageAllocator("secret")
    assert allocator.mode() == "memfd_secret"
    monkeypatch.setattr(secret_mappings, "renew_secret", refuse)  # in the child
    fork_with_inherited_slots(allocator, "locked")


UNLOCKED_FORK = """
drop_ipc_lock()
wiped, inherited = secret_pages.allocate(3000), secret_pages.allocate(3000, inherit=True)
wiped[:] = b"p" * 3000
inherited[:] = b"p" * 3000
read_end, write_end = os.pipe()
pid = os.fork()
if pid == 0:
    seen = dict(wiped=bytes(wiped).count(0), inherited=bytes(inherited) == b"p" * 3000,
                flags=flags_at(address_of(inherited)), wiped_flags=flags_at(address_of(wiped)))
    inherited[:] = b"c" * 3000
    os.write(write_end, json.dumps(seen).encode())
    os._exit(0)
os.close(write_end)
child = json.loads(os.fdopen(read_end).read())
os.waitpid(pid, 0)
emit(mode=secret_pages.memory_mode(), child=child, parent=bytes(inherited) == b"p" * 3000,
     flags=flags_at(address_of(inherited)), warnings=len(warnings),
     inherited=sorted(r.inherited for r in secret_pages.stats().regions))
"""


def test_an_unlocked_child_keeps_inherited_slots_in_pages_of_its_own() -> None:
    """Locking refused (no CAP_IPC_LOCK, RLIMIT_MEMLOCK 0): the same, in unlocked pages."""
    result = run_child(UNLOCKED_FORK, "auto")
    assert result["mode"] == "unlocked"
    assert result["inherited"] == [False, True]
    assert result["warnings"] == 1
    child = result["child"]
    assert isinstance(child, dict)
    assert child["wiped"] == 3000, "a wiped slot is not zero in the child"
    assert child["inherited"] is True, "the inherited slot lost its content"
    for flags, (must, must_not) in (
        (result["flags"], INHERITED_FLAGS["unlocked"]),  # the parent's
        (child["flags"], INHERITED_FLAGS["unlocked"]),
        (child["wiped_flags"], FLAGS["unlocked"]),
    ):
        assert isinstance(flags, list)
        assert must <= set(flags)
        assert not must_not & set(flags)
    assert result["parent"] is True, "the child wrote into the parent's slot"


@needs_secret
def test_without_the_fork_hook_memfd_secret_pages_would_be_shared() -> None:
    """The control of the fork test: a bare memfd_secret mapping is shared with the child."""
    address = secret_mappings.map_secret(4096)
    try:
        ctypes.memset(address, ord("p"), 32)
        pid = os.fork()
        if pid == 0:
            try:
                ctypes.memset(address, ord("c"), 32)
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        assert ctypes.string_at(address, 32) == b"c" * 32
    finally:
        secret_mappings.wipe_and_unmap(address, 4096)


def test_the_module_uses_one_allocator() -> None:
    assert secret_pages.default_allocator() is secret_pages.default_allocator()
    view, kept = secret_pages.allocate(32), secret_pages.allocate(32, inherit=True)
    assert secret_pages.stats().slots_in_use >= 2
    assert [r for r in secret_pages.stats().regions if r.inherited]
    secret_pages.release(view)
    secret_pages.release(kept)
    assert secret_pages.memory_mode() in MODES
    assert secret_pages.describe_memory().startswith(secret_pages.memory_mode() + ": ")
    with pytest.raises(ConfigError, match=ENV_VAR):
        PageAllocator("fast", source=ENV_VAR)
