"""Content-addressed artifact cache shared by concurrent trials.

An artifact (a trained teacher, a no-KD baseline, an MI estimate) is keyed by a hash of
exactly the config that determines it. The first trial to ask builds it under a file lock
and writes it atomically (temp file + rename); trials racing for the same key wait on that
lock alone and then read it, so every artifact is built once.
"""

from __future__ import annotations

import hashlib
import json
import os
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
        out = []
        for i, path in enumerate(paths):
            j = first[path]
            out.append(built[j] if j in built else torch.load(path, map_location="cpu", weights_only=True))
            self.events.append(CacheEvent(items[i][0], keys[i], hit=j not in built or j != i))
            self.configs.append(items[i][1])
        return out

    @staticmethod
    def _build_absent(indices: list[int], paths: list[Path], build, built: dict[int, Any]) -> None:
        """Build the absent ones of `indices` (their locks held) in one call; write each atomically."""
        missing = sorted(i for i in indices if not paths[i].exists())
        for i, artifact in zip(missing, build(missing) if missing else []):
            tmp = paths[i].with_name(f"{paths[i].name}.{os.getpid()}.tmp")
            torch.save(artifact, tmp)
            os.replace(tmp, paths[i])
            built[i] = artifact
