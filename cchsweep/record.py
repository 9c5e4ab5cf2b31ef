"""What crosses from a trial to the database: one typed `TrialRecord` per grid point.

Built in one place (`from_output` in a worker, `failed` in the driver), serialised in one place
(`dump_records`/`load_records`: one Tune result can carry the records of many grid points), and
read by the writer, the boundary search, the live progress and the tests. The Store writes
exactly these fields.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from cchsweep.schema import CALIBRATION_TASK
from cchsweep.study import MIValue

STATUSES = ("ok", "error")
RESULT_KEY = "records"  # the Tune result field that carries dump_records(...)
PROGRESS_KEY = "progress"  # a Tune result field with a progress line from a running bundle


@dataclass
class CacheEvent:
    """One use of a cached artifact by a trial: built (hit False) or reused (hit True)."""

    kind: str
    key: str
    hit: bool


@dataclass
class TrialRecord:
    trial_key: str
    study: str
    profile: str
    params: dict[str, Any]  # this grid point
    settings: dict[str, Any]  # the run's fixed settings
    status: str = "ok"
    error: str | None = None  # the last line of the exception, for status 'error'
    mode: str = "grid"  # or 'boundary:PARAM:TARGET'
    task: str | None = None
    gain_metric: str | None = None
    kd_gain: float | None = None  # positive: KD helped
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # model -> metric -> value
    mi: list[MIValue] = field(default_factory=list)
    cache: list[CacheEvent] = field(default_factory=list)
    run_id: str | None = None
    node_id: str | None = None
    device: str | None = None
    cpus: float | None = None
    gpu_fraction: float | None = None
    attempts: int | None = None
    started_at: str | None = None  # ISO 8601, UTC
    finished_at: str | None = None
    seconds: float | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"trial {self.trial_key}: status {self.status!r} is not one of {STATUSES}")
        if self.status == "ok" and self.kd_gain is None and self.task != CALIBRATION_TASK:
            raise ValueError(f"trial {self.trial_key}: an ok record needs a kd_gain")
        if self.status == "error" and not self.error:
            raise ValueError(f"trial {self.trial_key}: an error record needs its error text")

    def gap(self, source: str = "value", estimator: str | None = None) -> float | None:
        """I_TS - I_SL from the estimates (source 'value') or the closed form ('truth')."""
        values = {m.quantity: getattr(m, source) for m in self.mi if estimator in (None, m.estimator)}
        if values.get("i_ts") is None or values.get("i_sl") is None:
            return None
        return values["i_ts"] - values["i_sl"]

    @classmethod
    def failed(cls, spec: Mapping[str, Any], error: str, **fields: Any) -> TrialRecord:
        """The record of a trial whose attempts all raised: its spec and the last error line."""
        return cls(
            trial_key=spec["key"],
            study=spec["study"],
            profile=spec["profile"],
            params=dict(spec["params"]),
            settings=dict(spec["settings"]),
            status="error",
            error=error,
            mode=spec.get("mode", "grid"),
            **fields,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrialRecord:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown trial record fields: {', '.join(sorted(unknown))}")
        values = dict(data)
        values["mi"] = [m if isinstance(m, MIValue) else MIValue(**m) for m in values.get("mi") or []]
        values["cache"] = [e if isinstance(e, CacheEvent) else CacheEvent(**e) for e in values.get("cache") or []]
        return cls(**values)


def dump_records(records: Sequence[TrialRecord]) -> str:
    return json.dumps([r.to_dict() for r in records])


def load_records(text: str) -> list[TrialRecord]:
    return [TrialRecord.from_dict(d) for d in json.loads(text)]
