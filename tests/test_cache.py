"""The artifact cache: content-addressed, atomic, and built once when processes race."""

import multiprocessing as mp
import time

import pytest
import torch

from cchsweep.cache import ArtifactCache, config_hash


def _race(root, log, barrier):
    cache = ArtifactCache(root)
    barrier.wait()

    def build():
        with open(log, "a") as f:
            f.write("built\n")
        time.sleep(0.3)  # long enough that the others arrive while it builds
        return {"w": torch.arange(3.0)}

    value = cache.cached("teacher", {"seed": 1, "sigma12": 0.3}, build)
    assert torch.equal(value["w"], torch.arange(3.0))
    with open(log, "a") as f:
        f.write(f"hit={cache.events[0].hit}\n")


def _run_all(target, argsets):
    """Start one spawned process per argument tuple (each gets a shared barrier last), wait, check."""
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(len(argsets))
    procs = [ctx.Process(target=target, args=(*args, barrier)) for args in argsets]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0


def test_racing_processes_build_once(tmp_path):
    log = tmp_path / "log.txt"
    _run_all(_race, [(tmp_path / "c", log)] * 4)
    lines = log.read_text().split()
    assert lines.count("built") == 1
    assert sorted(line for line in lines if line.startswith("hit")) == ["hit=False", "hit=True", "hit=True", "hit=True"]
    assert not list((tmp_path / "c").rglob("*.tmp"))  # nothing half-written left behind


def test_key_is_the_config_not_its_order(tmp_path):
    assert config_hash("k", {"a": 1, "b": 2}) == config_hash("k", {"b": 2, "a": 1})
    assert config_hash("k", {"a": 1}) != config_hash("k", {"a": 2})
    assert config_hash("teacher", {"a": 1}) != config_hash("nokd", {"a": 1})
    cache = ArtifactCache(tmp_path)
    calls = []
    for cfg in ({"a": 1}, {"a": 1}, {"a": 2}):
        cache.cached("k", cfg, lambda: calls.append(1) or {"x": torch.zeros(1)})
    assert len(calls) == 2
    assert [e.hit for e in cache.events] == [False, True, False]


def _overlap(root, log, name, items, barrier):
    cache = ArtifactCache(root)
    barrier.wait()

    def build(missing):
        with open(log, "a") as f:
            f.write(f"start {name} {','.join(items[i] for i in missing)}\n")
        time.sleep(1.0)  # the other process arrives while this one builds
        with open(log, "a") as f:
            f.write(f"end {name}\n")
        return [{"w": torch.tensor([ord(items[i])])} for i in missing]

    values = cache.cached_many([("teacher", {"seed": s}) for s in items], build)
    assert [int(v["w"]) for v in values] == [ord(s) for s in items]  # each its own artifact, whoever built it


def test_bundles_sharing_an_artifact_build_their_own_at_once_and_wait_only_for_it(tmp_path):
    # two bundles that share seed "b"'s teacher: each builds what only it needs (a, c) straight
    # away, one of them "b" too, and the other waits for "b" alone, never for the whole of the other
    log = tmp_path / "log.txt"
    _run_all(_overlap, [(tmp_path / "c", log, "A", ["a", "b"]), (tmp_path / "c", log, "B", ["b", "c"])])
    lines = log.read_text().splitlines()
    assert [line.split()[0] for line in lines[:2]] == ["start", "start"]  # both built at once
    built = [item for line in lines if line.startswith("start") for item in line.split()[2].split(",")]
    assert sorted(built) == ["a", "b", "c"]  # each artifact built once
    assert not list((tmp_path / "c").rglob("*.tmp"))


def test_a_points_cache_events_include_each_of_its_estimators_artifacts(tmp_path):
    """Points run several estimators (mi_estimator 'lmi,ksg'); each MI artifact is one estimator's.
    Each point is charged its own MI artifacts: every one used to fall back to the first point."""
    from cchsweep.execute import _attribute

    cache = ArtifactCache(tmp_path)
    points = [{"sigma12": s, "seed": 0, "mi_estimator": "lmi,ksg"} for s in (0.1, 0.7)]
    for s in (0.1, 0.7):
        for estimator in ("lmi", "ksg"):
            cache.cached("synthetic_mi", {"sigma12": s, "seed": 0, "mi_estimator": estimator}, lambda: 1.0)
    cache.cached("synthetic_mi", {"sigma12": 0.1, "seed": 0, "mi_estimator": "lmi"}, lambda: 1.0)  # reused
    events = _attribute(cache, points)
    assert [len(e) for e in events] == [2, 2]
    keys = [{e.key for e in point} for point in events]
    assert not keys[0] & keys[1]  # each point its own two artifacts
    assert all(not e.hit for point in events for e in point)  # each built once, by its own point


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_a_damaged_artifact_is_rebuilt_not_read(tmp_path, capsys, damage):
    """A flipped byte in a stored artifact read back as a silently different tensor, and a truncated one
    failed every later trial; both now fail the digest written beside the artifact and are rebuilt."""
    cache = ArtifactCache(tmp_path)
    calls = []

    def build():
        calls.append(1)
        return {"w": torch.arange(10_000, dtype=torch.float32)}

    cache.cached("teacher", {"seed": 1}, build)
    (path,) = (tmp_path / "teacher").glob("*.pt")
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x01
    else:
        del data[len(data) // 2 :]
    path.write_bytes(bytes(data))
    value = ArtifactCache(tmp_path).cached("teacher", {"seed": 1}, build)
    assert torch.equal(value["w"], torch.arange(10_000, dtype=torch.float32)) and len(calls) == 2
    assert f"artifact {path} is damaged" in capsys.readouterr().err
    again = ArtifactCache(tmp_path)  # repaired on disk: read, not rebuilt
    assert torch.equal(again.cached("teacher", {"seed": 1}, build)["w"], value["w"]) and len(calls) == 2
    assert again.events[0].hit


def test_an_artifact_without_a_digest_is_read_as_it_is(tmp_path):
    """Artifacts written by a release without digests stay usable: nothing to check them against."""
    cache = ArtifactCache(tmp_path)
    cache.cached("teacher", {"seed": 1}, lambda: {"w": torch.ones(3)})
    (digest,) = (tmp_path / "teacher").glob("*.pt.sha256")
    digest.unlink()
    again = ArtifactCache(tmp_path)
    assert torch.equal(again.cached("teacher", {"seed": 1}, lambda: {"w": torch.zeros(3)})["w"], torch.ones(3))
    assert again.events[0].hit
