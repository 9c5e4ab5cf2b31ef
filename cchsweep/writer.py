"""The single DuckDB writer: a Tune callback in the driver process.

TrialRecords arrive with trial results (or are made here for errors) and are flushed in batches, one transaction
per flush, opening the file only for the flush so readers get in between. The connection
is never held by the object: callbacks are pickled into Tune's experiment state.

Another process may hold the file (a notebook's connection, the DuckDB CLI). While the sweep runs, a
flush that meets the lock keeps its records and tries again at a later step (the sweep goes on); at the
end the writer waits for the lock up to FINAL_WAIT_SECONDS, saying so, before it gives up.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from ray.tune import Callback

from cchsweep.record import PROGRESS_KEY, RESULT_KEY, TrialRecord, load_records
from cchsweep.store import FINAL_WAIT_SECONDS, DatabaseLocked, Store

RUN_WAIT_SECONDS = 1.0  # while trials run: a locked file costs the Tune loop at most this per step


class DuckDBWriter(Callback):
    def __init__(
        self,
        db_path: str,
        run_id: str,
        total: int,
        bundles: int = 0,
        flush_rows: int = 32,
        flush_seconds: float = 5.0,
        show_progress: bool = True,
    ):
        self.db_path = db_path
        self.run_id = run_id
        self.total = total
        self.bundles = bundles
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.show_progress = show_progress

    def setup(self, stop=None, num_samples=None, total_num_samples=None, **info):
        self._buffer: list[TrialRecord] = []
        self._last_flush = time.monotonic()
        self._started = time.monotonic()
        self._bundle_numbers: dict[str, int] = {}
        self.n_ok = 0
        self.n_error = 0
        self._locked = False  # a flush met another process's lock and holds its records

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if PROGRESS_KEY in result and self.show_progress:
            self._print_bundle(trial, result[PROGRESS_KEY])
        if RESULT_KEY not in result:
            return
        for record in load_records(result[RESULT_KEY]):
            record.run_id = self.run_id
            record.attempts = trial.num_failures + 1
            self.n_ok += 1
            self._add(record)

    def on_trial_error(self, iteration, trials, trial, **info):
        if "bundle" in trial.config:
            specs = trial.config["bundle"]
        else:
            from cchsweep.search import search_spec

            specs = [search_spec(trial.config)]
        engine = trial.config["engine"]
        text = _last_error_line(_error_text(trial))
        for spec in specs:  # every point of a failed bundle gets an error row
            self.n_error += 1
            self._add(
                TrialRecord.failed(
                    spec,
                    text,
                    run_id=self.run_id,
                    cpus=engine["cpus"],
                    gpu_fraction=engine["gpu"],
                    attempts=trial.num_failures,
                    finished_at=datetime.now(timezone.utc).isoformat(),
                )
            )

    def on_step_end(self, iteration, trials, **info):
        if self._buffer and (
            len(self._buffer) >= self.flush_rows or time.monotonic() - self._last_flush >= self.flush_seconds
        ):
            try:
                self.flush(RUN_WAIT_SECONDS)
            except DatabaseLocked:  # keep the records; the next flush tries again
                self._last_flush = time.monotonic()
                if not self._locked:
                    self._locked = True
                    self._say(f"{self.db_path} is locked by another process: results are held until it is free")

    def on_experiment_end(self, trials, **info):
        try:
            self.flush(RUN_WAIT_SECONDS)
        except DatabaseLocked:
            self._say(
                f"waiting up to {FINAL_WAIT_SECONDS / 60:.0f} min for the lock on {self.db_path} to write "
                f"{len(self._buffer)} results: close the other process's connection"
            )
            try:
                self.flush(FINAL_WAIT_SECONDS)
            except (KeyboardInterrupt, DatabaseLocked):  # once dropped without a word
                n = len(self._buffer)
                self._say(
                    f"{n} finished result{'s' * (n != 1)} not written ({self.db_path} stayed locked): the same "
                    f"command runs {'those points' if n != 1 else 'that point'} again"
                )
                raise
        # What this run completed, which the trials table alone cannot tell once another run on
        # the same file has rewritten some of the same keys.
        Store(self.db_path, FINAL_WAIT_SECONDS).finish_run(self.run_id, n_ok=self.n_ok, n_error=self.n_error)

    def flush(self, wait: float = FINAL_WAIT_SECONDS) -> None:
        """Write the buffered records, waiting up to `wait` seconds for another process's lock."""
        if self._buffer:
            kept = Store(self.db_path, wait).write_trials(self._buffer)
            self._buffer = []
            if self._locked:
                self._locked = False
                self._say(f"{self.db_path} is free again: the held results are written")
            if kept:
                self._say(
                    f"kept the stored result of {len(kept)} point{'s' * (len(kept) != 1)} whose rerun failed "
                    f"(an error never replaces a result), e.g. {kept[0]}"
                )
        self._last_flush = time.monotonic()

    def _say(self, text: str) -> None:
        print(f"run {self.run_id}: {text}", file=sys.stderr, flush=True)

    def _add(self, record: TrialRecord) -> None:
        self._buffer.append(record)
        if self.show_progress:
            self._print(record)

    def _print_bundle(self, trial, text: str) -> None:
        """A running bundle's progress line: which bundle, its size, what it is training now."""
        specs = trial.config.get("bundle", [])
        number = self._bundle_numbers.setdefault(trial.trial_id, len(self._bundle_numbers) + 1)
        elapsed = time.monotonic() - self._started
        print(
            f"[bundle {number}/{self.bundles} {elapsed:6.0f}s] {len(specs)} point{'s' * (len(specs) != 1)}: {text}",
            file=sys.stderr,
            flush=True,
        )

    def _print(self, record: TrialRecord) -> None:
        done = self.n_ok + self.n_error
        params = " ".join(f"{k}={v}" for k, v in sorted(record.params.items()))
        if record.status == "ok":
            if record.kd_gain is None:  # a calibration point: each estimate against the truth
                detail = " ".join(f"{m.estimator}={m.value:.3f}" for m in record.mi)
                detail += f" truth={record.mi[0].truth:.3f}" if record.mi and record.mi[0].truth is not None else ""
            else:
                gaps = {e: record.gap(estimator=e) for e in dict.fromkeys(m.estimator for m in record.mi)}
                shown = {e: g for e, g in gaps.items() if g is not None}
                detail = f"kd_gain={record.kd_gain:+.4f}"
                if len(shown) == 1:
                    detail += f" mi_gap={next(iter(shown.values())):+.3f}"
                elif shown:  # one gap per estimator
                    detail += " mi_gap " + " ".join(f"{e}={g:+.3f}" for e, g in shown.items())
            detail += f" ({record.seconds:.1f}s)"
        else:
            detail = f"ERROR {record.error}"
        elapsed = time.monotonic() - self._started
        print(
            f"[{done:>{len(str(self.total))}}/{self.total} {elapsed:6.0f}s] {record.status:<5} {params}  {detail}",
            file=sys.stderr,
            flush=True,
        )


def _error_text(trial) -> str:
    """The latest failure's traceback. Tune appends every failure to the trial's local error
    file; the copy in storage (trial.get_error()) is synced later and can be stale."""
    path = trial.error_file
    text = Path(path).read_text(errors="replace") if path and Path(path).exists() else (trial.get_error() or "")
    return text.rsplit("Failure # ", 1)[-1]


def _last_error_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:500] if lines else "trial failed without an error message"
