"""`cchsweep reproduce`: the offline studies in turn into one database, then one report index.

Each study runs as `cchsweep run STUDY --profile P` would (trials already stored are skipped, so a
rerun resumes), then `cchsweep report --all` writes every study's page and the index, whose summary
table says per study what the paper reported, what was measured and whether they agree
(analysis.findings). Every plan and profile is checked before anything runs.
"""

from __future__ import annotations

import sys
from pathlib import Path

from cchsweep.errors import UsageError

# the studies whose data ship offline (../shared/data: MNIST, BSDS500, TCGA) or need none
OFFLINE = (
    "synthetic_sigma12",
    "synthetic_lambda",
    "mnist_blur",
    "mnist_alpha",
    "tcga_noise",
    "tcga_fusion",
    "tcga_estimators",
    "mi_calibration",
)


def reproduce(
    studies: list[str],
    profile: str,
    db: Path,
    storage: Path,
    out: Path,
    *,
    data_dir: str | None = None,
    address: str | None = None,
    dry_run: bool = False,
    command: str = "",
) -> int:
    from cchsweep.estimate import minutes, plan_and_estimate, stored_keys
    from cchsweep.grid import plan
    from cchsweep.runner import check_data, check_reachable, check_writable, run_sweep
    from cchsweep.store import Store
    from searchspaces import STUDIES, check_known

    check_known(studies)
    missing = [s for s in studies if profile not in STUDIES[s].profiles]
    if len(studies) == 1 and missing:  # one study asked for, without that profile
        have = ", ".join(STUDIES[studies[0]].profiles)
        raise UsageError(f"study {studies[0]} has no profile {profile!r}; it has {have}")
    if missing == studies:
        raise UsageError(f"no study here has a profile {profile!r}; reproduce runs smoke, quick or paper")
    if missing:
        raise UsageError(f"study {missing[0]} has no profile {profile!r}; leave it out with --studies")
    plans = [plan(STUDIES[s], profile) for s in studies]
    # every check before anything is printed or run; a dry run makes the same ones (missing data: a line)
    check_writable(db, storage)
    check_reachable(address)
    data, data_missing = check_data(plans, data_dir, dry_run)
    if not dry_run:
        Store(db).ensure_schema()
    out_stream = sys.stdout if dry_run else sys.stderr
    total, unknown_cost = 0.0, []
    for p in plans:
        lines, seconds = plan_and_estimate(p, db, stored_keys(db, p), None)
        print("\n".join(lines), file=out_stream, flush=True)
        if seconds is None:
            unknown_cost.append(p.study.name)
        else:
            total += seconds
    line = f"reproduce ({profile}): {len(plans)} studies, ~{minutes(total)} in all on this machine"
    line += f" (no estimate for {', '.join(unknown_cost)})" if unknown_cost else ""
    print(line, file=out_stream, flush=True)
    if dry_run:
        if data_missing:
            print(f"data: {data_missing} (the run would stop here)")
        return 0
    failed = 0
    for p in plans:
        summary = run_sweep(p, db, storage, address=address, command=command, data_dir=data)
        print(
            f"{p.study.name} ({profile}): {summary.n_ok} ok, {summary.n_error} failed, "
            f"{summary.n_skipped} already stored, of {summary.n_trials} trials in {summary.seconds:.0f}s",
            flush=True,
        )
        if summary.interrupted:
            print("cchsweep: interrupted; stored trials are kept, rerun the same command to go on", file=sys.stderr)
            return 130
        failed += summary.n_error
    from analysis.overview import write_all

    page = write_all(db, out)
    from analysis.findings import finding_table

    print(finding_table(db, [p.study.name for p in plans], profile=profile))
    print(f"report: {page}")
    return 1 if failed else 0
