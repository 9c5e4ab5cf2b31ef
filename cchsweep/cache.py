"""Content-addressed artifact cache shared by concurrent trials.

An artifact (a trained teacher, a no-KD baseline, an MI estimate) is keyed by a hash of
exactly the config that determines it. The first trial to ask builds it under a file lock
and writes it atomically (temp file + rename); trials racing for the same key wait on that
lock alone and then read it, so every artifact is built once.

Beside each artifact `<key>.pt` lies `<key>.pt.sha256`, the digest of its bytes, written first. An
artifact whose bytes no longer match it (a flipped bit, a truncated copy) or that torch cannot read
is damaged: it is rebuilt under its lock, and stderr says which file. (One from a release without
digests is trusted as it is, and rebuilt only if torch cannot read it.)
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock, Timeout

from cchsweep.record import CacheEvent


def config_hash(kind: str, config: Mapping[str, Any]) -> str:
    canonical = json.dumps({"kind": kind, "config": config}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:20]


@dataclass
class ArtifactCache:
    root: Path
    events: list[CacheEvent] = field(default_factory=list)
    configs: list[Mapping[str, Any]] = field(default_factory=list)  # each event's config
    # also told of a damaged artifact (in a Ray worker, whose stderr stays in Ray's logs: the driver's
    # progress line, execute.run_bundle's report)
    warn: Callable[[str], None] | None = None

    def cached(self, kind: str, config: Mapping[str, Any], build: Callable[[], Any]) -> Any:
        return self.cached_many([(kind, config)], lambda missing: [build()])[0]

    def cached_many(
        self, items: Sequence[tuple[str, Mapping[str, Any]]], build: Callable[[list[int]], list[Any]]
    ) -> list[Any]:
        """Every item's artifact; build(indices of absent ones) makes several in one call.

        Items already written are read as they are. First the absent items no other process is
        building: their locks are taken without waiting and those items built together. Then the
        items another process held: their locks are waited for (in sorted order: no deadlock
        between bundles asking for overlapping sets) and whatever the other left absent is built.
        So two bundles sharing a seed's teacher build their own in parallel and wait only for that
        one, never for each other's whole set. An item listed twice is built once.
        """
        keys = [config_hash(kind, config) for kind, config in items]
        paths = [Path(self.root) / kind / f"{key}.pt" for (kind, _), key in zip(items, keys)]
        first = {p: i for i, p in reversed(list(enumerate(paths)))}  # each distinct path's first index
        built: dict[int, Any] = {}
        taken: set[Path] = set()
        with ExitStack() as locks:
            for path in sorted(first):
                if path.exists():  # written whole (renamed into place): readable without its lock
                    taken.add(path)
                    continue
                path.parent.mkdir(parents=True, exist_ok=True)
                lock = FileLock(str(path) + ".lock")
                try:
                    lock.acquire(timeout=0)
                except Timeout:
                    continue
                locks.callback(lock.release)
                taken.add(path)
            self._build_absent([first[p] for p in taken], paths, build, built)
        waited = sorted(set(first) - taken)
        if waited:
            with ExitStack() as locks:
                for path in waited:
                    locks.enter_context(FileLock(str(path) + ".lock"))
                self._build_absent([first[p] for p in waited], paths, build, built)
        values = {j: built[j] if j in built else _read(paths[j]) for j in sorted(set(first.values()))}
        damaged = sorted(j for j, v in values.items() if v is _DAMAGED)
        if damaged:
            self._rebuild(damaged, paths, build, built, values)
        out = []
        for i, path in enumerate(paths):
            j = first[path]
            out.append(values[j])
            self.events.append(CacheEvent(items[i][0], keys[i], hit=j not in built or j != i))
            self.configs.append(items[i][1])
        return out

    def _rebuild(self, damaged: list[int], paths: list[Path], build, built: dict[int, Any], values: dict) -> None:
        """Under their locks (another process may be at the same repair): read each damaged artifact again,
        and remove and rebuild those still damaged."""
        with ExitStack() as locks:
            for j in sorted(damaged, key=lambda j: paths[j]):
                locks.enter_context(FileLock(str(paths[j]) + ".lock"))
            for j in damaged:
                values[j] = _read(paths[j])
                if values[j] is _DAMAGED:
                    message = (
                        f"artifact {paths[j]} is damaged (its bytes do not match the digest written with them, "
                        "or torch cannot read them): rebuilding it"
                    )
                    print(f"cchsweep: {message}", file=sys.stderr, flush=True)
                    if self.warn is not None:
                        self.warn(message)
                    paths[j].unlink(missing_ok=True)
            self._build_absent([j for j in damaged if values[j] is _DAMAGED], paths, build, built)
        values.update({j: built[j] for j in damaged if j in built})

    @staticmethod
    def _build_absent(indices: list[int], paths: list[Path], build, built: dict[int, Any]) -> None:
        """Build the absent ones of `indices` (their locks held) in one call; write each atomically, its
        digest first (an artifact in place always has its digest beside it)."""
        missing = sorted(i for i in indices if not paths[i].exists())
        for i, artifact in zip(missing, build(missing) if missing else []):
            buffer = io.BytesIO()
            torch.save(artifact, buffer)
            data = buffer.getvalue()
            for target, content in ((_digest(paths[i]), hashlib.sha256(data).hexdigest().encode()), (paths[i], data)):
                tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
                tmp.write_bytes(content)
                os.replace(tmp, target)
            built[i] = artifact


_DAMAGED = object()  # what _read returns for an artifact that must be rebuilt


def _digest(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _read(path: Path) -> Any:
    """The artifact at `path`, or _DAMAGED: bytes that do not match the digest written with them, or
    that torch cannot read (truncated, overwritten). Anything torch.load raises counts: this is where an
    unreadable file is turned into a rebuild."""
    try:
        data = path.read_bytes()
        digest = _digest(path)
        if digest.exists() and hashlib.sha256(data).hexdigest() != digest.read_text().strip():
            return _DAMAGED
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - see the docstring
        return _DAMAGED
