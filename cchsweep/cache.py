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
from collections.abc import Callable, Mapping
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

    def cached(self, kind: str, config: Mapping[str, Any], build: Callable[[], Any]) -> Any:
        key = config_hash(kind, config)
        path = Path(self.root) / kind / f"{key}.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(path) + ".lock"):
            if path.exists():
                self.events.append(CacheEvent(kind, key, hit=True))
                return torch.load(path, map_location="cpu", weights_only=True)
            artifact = build()
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            torch.save(artifact, tmp)
            os.replace(tmp, path)
        self.events.append(CacheEvent(kind, key, hit=False))
        return artifact
