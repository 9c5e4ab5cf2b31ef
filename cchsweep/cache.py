"""Content-addressed artifact cache shared by concurrent trials.

An artifact (a trained teacher, a no-KD baseline, an MI estimate) is keyed by a hash of
exactly the config that determines it. The first trial to ask builds it under a file lock
and writes it atomically (temp file + rename); trials racing for the same key wait on the
lock and then read it, so every artifact is built once.
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
from filelock import FileLock

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
        """Every item's artifact; build(indices of the absent ones) makes them all in one call.

        The locks of all items are taken in sorted order (no deadlock between bundles asking for
        overlapping sets); an item listed twice is built once.
        """
        keys = [config_hash(kind, config) for kind, config in items]
        paths = [Path(self.root) / kind / f"{key}.pt" for (kind, _), key in zip(items, keys)]
        first = {p: i for i, p in reversed(list(enumerate(paths)))}  # each distinct path's first index
        with ExitStack() as locks:
            for path in sorted(first):
                path.parent.mkdir(parents=True, exist_ok=True)
                locks.enter_context(FileLock(str(path) + ".lock"))
            missing = [i for p, i in sorted(first.items(), key=lambda pi: pi[1]) if not p.exists()]
            built = dict(zip(missing, build(missing) if missing else []))
            for i, artifact in built.items():
                tmp = paths[i].with_name(f"{paths[i].name}.{os.getpid()}.tmp")
                torch.save(artifact, tmp)
                os.replace(tmp, paths[i])
            out = []
            for i, path in enumerate(paths):
                j = first[path]
                if j in built:
                    out.append(built[j])
                else:
                    out.append(torch.load(path, map_location="cpu", weights_only=True))
                self.events.append(CacheEvent(items[i][0], keys[i], hit=j not in built or j != i))
                self.configs.append(items[i][1])
        return out
