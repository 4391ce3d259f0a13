"""The on-disk prefix cache owns only its files: foreign files survive, damaged entries are dropped,
processes can share the folder, and it stays within its bounds (no model needed: states are bytes)."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import pytest

from ondevice.errors import DirectoryError
from ondevice.engine.prefix_cache import FILE_PREFIX, PrefixCache, _FILE

pytestmark = pytest.mark.nomodel


def ours(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if _FILE.fullmatch(p.name))


def test_foreign_kv_files_survive_a_hundred_evictions(tmp_path):
    foreign = {
        "mydata1.kv": b"someone else's data",
        "ondevice-kv-notours.kv": b"named like ours, but not our pattern",
        # our exact pattern but not our magic: still not removed by eviction
        f"{FILE_PREFIX}{'0' * 16}-{'0' * 64}.kv": b"NOTOURS!" + b"x" * 100,
    }
    for name, data in foreign.items():
        (tmp_path / name).write_bytes(data)
    a = PrefixCache(max_entries=2, directory=tmp_path, namespace="model-a", disk_max_bytes=10_000)
    b = PrefixCache(max_entries=3, directory=tmp_path, namespace="model-b", disk_max_bytes=10_000)
    for i in range(100):
        (a if i % 2 else b).put([1, 2, i], bytes([i % 256]) * 500)
    for name, data in foreign.items():
        assert (tmp_path / name).read_bytes() == data
    assert len(ours(tmp_path)) == 2 + 3 + 1  # per-namespace bounds (+ the foreign look-alike)
    assert not list(tmp_path.glob(".*.part"))


def test_eviction_is_per_namespace_and_least_recently_used(tmp_path):
    a = PrefixCache(max_entries=2, directory=tmp_path, namespace="model-a")
    PrefixCache(max_entries=2, directory=tmp_path, namespace="model-b").put([9], b"b" * 10)
    a.put([0], b"a" * 10)
    time.sleep(0.02)
    a.put([1], b"a" * 10)
    time.sleep(0.02)
    assert PrefixCache(directory=tmp_path, namespace="model-a").get([0]) is not None  # a read is a use
    time.sleep(0.02)
    a.put([2], b"a" * 10)  # evicts [1], the least recently used of model-a
    fresh = PrefixCache(max_entries=2, directory=tmp_path, namespace="model-a")
    assert fresh.get([1]) is None and fresh.get([0]) is not None and fresh.get([2]) is not None
    assert PrefixCache(directory=tmp_path, namespace="model-b").get([9]) is not None  # other models untouched


def test_the_folder_is_bounded_in_bytes_over_all_models(tmp_path):
    caches = [PrefixCache(max_entries=100, directory=tmp_path, namespace=f"m{i}", disk_max_bytes=5000) for i in range(3)]
    for i in range(30):
        caches[i % 3].put([i], b"s" * 900)
        time.sleep(0.002)
    sizes = [p.stat().st_size for p in ours(tmp_path)]
    assert sum(sizes) <= 5000 and len(sizes) >= 4
    newest = PrefixCache(max_entries=100, directory=tmp_path, namespace="m2")
    assert newest.get([29]) is not None  # the most recent one stayed


def test_a_damaged_entry_is_dropped_and_recomputed(tmp_path):
    cache = PrefixCache(directory=tmp_path, namespace="m")
    cache.put([5, 6, 7], b"state" * 100)
    (path,) = ours(tmp_path)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01  # one flipped bit in the state
    path.write_bytes(bytes(data))
    fresh = PrefixCache(directory=tmp_path, namespace="m")
    assert fresh.get([5, 6, 7]) is None and fresh.dropped == 1
    assert not path.exists()
    fresh.put([5, 6, 7], b"state" * 100)  # the caller evaluated it again
    assert PrefixCache(directory=tmp_path, namespace="m").get([5, 6, 7]).state == b"state" * 100


def test_truncated_or_vanished_files_are_misses(tmp_path):
    cache = PrefixCache(directory=tmp_path, namespace="m")
    cache.put([1], b"x" * 1000)
    cache.put([2], b"y" * 1000)
    one, two = (cache._file(k) for k in list(cache._entries))
    one.write_bytes(one.read_bytes()[:30])
    two.unlink()
    fresh = PrefixCache(directory=tmp_path, namespace="m")
    assert fresh.get([1]) is None and fresh.get([2]) is None


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_cache_files_follow_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        PrefixCache(directory=tmp_path, namespace="m").put([1], b"x")
    finally:
        os.umask(old)
    (path,) = ours(tmp_path)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_a_file_as_cache_dir_is_a_clear_error(tmp_path):
    target = tmp_path / "afile"
    target.write_text("mine")
    with pytest.raises(DirectoryError, match="is a file, not a directory: pass a directory"):
        PrefixCache(directory=target)
    assert target.read_text() == "mine"


def test_stale_temp_files_of_dead_writers_are_removed_fresh_ones_kept(tmp_path):
    cache = PrefixCache(directory=tmp_path, namespace="m")
    name = f".{FILE_PREFIX}{'a' * 16}-{'b' * 64}.kv.x1y2.part"
    stale, fresh = tmp_path / name, tmp_path / name.replace("x1y2", "z3w4")
    stale.write_bytes(b"half")
    fresh.write_bytes(b"being written")
    os.utime(stale, (1, 1))
    cache.put([1], b"x")
    assert not stale.exists() and fresh.exists()


def _hammer(args: tuple[str, int]) -> int:
    directory, worker = args
    cache = PrefixCache(max_entries=3, directory=directory, namespace=f"m{worker % 2}", disk_max_bytes=40_000)
    served = 0
    for i in range(60):
        tokens = [i % 7, worker % 2]
        state = bytes([i % 7]) * 2000
        cache.clear()  # always go to disk
        entry = cache.get(tokens)
        if entry is not None:
            assert entry.state == state  # never a torn or foreign file
            served += 1
        else:
            cache.put(tokens, state)
    return served


def test_processes_sharing_the_folder(tmp_path):
    (tmp_path / "theirs.kv").write_bytes(b"keep me")
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(4) as pool:
        served = pool.map(_hammer, [(str(tmp_path), w) for w in range(4)])
    assert sum(served) > 0
    assert (tmp_path / "theirs.kv").read_bytes() == b"keep me"
    assert not list(tmp_path.glob(".*.part"))
    assert len(ours(tmp_path)) <= 6
