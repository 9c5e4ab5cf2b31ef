"""cchsweep command line: list, run, query, status."""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shlex
import signal
import sys
import threading
from pathlib import Path

from cchsweep.errors import INTERRUPTS, UsageError, on_interrupt, on_terminate
from cchsweep.schema import CALIBRATION_TASK

DEFAULT_DB = "cchsweep.duckdb"


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad command line is one line on stderr and exit code 2."""

    def error(self, message: str):
        self.exit(2, f"cchsweep: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="cchsweep", description="Ray Tune sweeps of cross-modal KD with a DuckDB results database.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sub.add_parser("list", help="list the studies with their grid sizes")

    r = sub.add_parser("run", help="run a study's grid with Ray Tune and store every trial in DuckDB")
    r.add_argument("study")
    r.add_argument(
        "--profile",
        default="paper",
        help="paper (the paper's grid and settings), quick (its design in minutes on a CPU, most studies) "
        "or smoke (seconds on CPU)",
    )
    r.add_argument("--db", default=DEFAULT_DB, help=f"results database (default ./{DEFAULT_DB})")
    r.add_argument("--storage", help="Tune state and artifact cache (default: beside --db, NAME.cchsweep/)")
    r.add_argument("--address", help="Ray cluster address, e.g. auto; default: an embedded local Ray")
    r.add_argument("--data-dir", help="where data sets live (default $CCHSWEEP_DATA, else the per-user cache)")
    r.add_argument("--seeds", type=int, help="run seeds 0..N-1 instead of the profile's seeds")
    r.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a grid axis (comma-separated values) or a setting; repeatable",
    )
    r.add_argument("--max-failures", type=int, default=1, help="retries per failing trial or bundle (default 1)")
    r.add_argument(
        "--bundle-size",
        type=int,
        help="grid points per Ray trial, trained together as stacks (default: spread over the free "
        "CPUs/GPUs within a memory budget; 1 trains each point alone)",
    )
    r.add_argument("--force", action="store_true", help="rerun trials already stored as ok")
    r.add_argument(
        "--dry-run",
        action="store_true",
        help="print the plan (trials, bundles, stored ones) and the time estimate for this machine, run nothing",
    )
    r.add_argument(
        "--resume",
        action="store_true",
        help="finish a sweep whose driver died: marks it interrupted, runs the trials not stored",
    )
    r.add_argument(
        "--gpu",
        default="auto",
        help="GPU fraction per trial: auto (the study's, where the cluster has GPUs) or a number",
    )
    r.add_argument(
        "--search",
        choices=("boundary",),
        help="instead of the grid: find where --target crosses zero along --param (Optuna TPE)",
    )
    r.add_argument("--param", help="the float axis to search, e.g. sigma12 or gamma")
    r.add_argument("--range", dest="value_range", metavar="LO:HI", help="the interval to search")
    r.add_argument("--budget", type=int, default=12, help="trials for the search (default 12)")
    r.add_argument("--target", default="mi_gap", help="mi_gap (default), mi_gap_truth (closed form) or kd_gain")
    r.add_argument(
        "--shared-storage",
        action="store_true",
        help="--storage is on a filesystem every node mounts (needed on multi-host clusters)",
    )

    q = sub.add_parser("query", help="run SQL against the results database (read-only)")
    q.add_argument("sql")
    q.add_argument("--db", default=DEFAULT_DB)
    q.add_argument("--format", choices=("table", "csv", "json"), default="table")

    rp = sub.add_parser("report", help="write an HTML report (Altair charts, tables) of a study's stored results")
    rp.add_argument("study", nargs="?", help="the study (omit with --all)")
    rp.add_argument(
        "--all",
        action="store_true",
        help="every stored study's page and one index: the scorecard over all studies and the MI calibration",
    )
    rp.add_argument("--db", default=DEFAULT_DB)
    rp.add_argument("--out", default="reports", help="output directory (default ./reports; one folder per study)")

    a = sub.add_parser("advise", help="should a teacher modality distil into your student? (the CCH, before you train)")
    a.add_argument("data", help="cohort directory: one CSV/Parquet per modality (first column patient) + labels.csv")
    a.add_argument("--student", required=True, help="the weak modality to improve")
    a.add_argument("--teachers", help="comma-separated candidate teachers (default: every other modality)")
    a.add_argument(
        "--estimator",
        default="lmi",
        help="MI estimator: lmi (default; latentmi's method, fast), latentmi, mine or ksg; several (lmi,ksg) "
        "give each one's verdict and their consensus",
    )
    a.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="repeats, each a new split, new networks and MI seeds: the standard errors (default 3)",
    )
    a.add_argument(
        "--seed", type=int, default=0, help="seed of the first repeat (repeat r uses seed + r: split, networks, MI)"
    )
    a.add_argument("--db", help="also store the advice in this results database (table advice)")
    a.add_argument(
        "--verify",
        type=int,
        metavar="K",
        help="distil for real from the top K teachers and one control, through the engine (needs --db)",
    )
    a.add_argument("--verify-seeds", type=int, help="seeds per verified teacher (default 3)")
    a.add_argument(
        "--verify-profile",
        help="tcga_noise profile for the KD trials (paper, the default; paper_kipan, smoke or quick)",
    )
    a.add_argument("--out", help="write an HTML/PNG report of the gaps to this directory")

    rr = sub.add_parser(
        "reproduce", help="run the offline studies in turn into one database and write one report index"
    )
    rr.add_argument(
        "--profile",
        default="quick",
        help="quick (about 45 minutes on 2 CPU cores), paper (a GPU job) or smoke (the plumbing check)",
    )
    rr.add_argument("--studies", help="comma-separated studies (default: every offline study)")
    rr.add_argument("--db", default=DEFAULT_DB, help=f"results database (default ./{DEFAULT_DB})")
    rr.add_argument("--storage", help="Tune state and artifact cache (default: beside --db, NAME.cchsweep/)")
    rr.add_argument("--out", default="reports", help="report directory (default ./reports)")
    rr.add_argument("--data-dir", help="where data sets live (default $CCHSWEEP_DATA, else the per-user cache)")
    rr.add_argument("--address", help="Ray cluster address, e.g. auto; default: an embedded local Ray")
    rr.add_argument("--dry-run", action="store_true", help="print each study's plan and the estimate, run nothing")

    s = sub.add_parser("status", help="list runs with trial counts by status")
    s.add_argument("--db", default=DEFAULT_DB)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    INTERRUPTS.clear()
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, on_interrupt) if main_thread else None  # Ctrl-C recorded too
    previous_term = signal.signal(signal.SIGTERM, on_terminate) if main_thread else None  # kill: as Ctrl-C
    try:
        if args.command in ("run", "reproduce", "advise"):
            check_switches()
        return COMMANDS[args.command](args)
    except UsageError as exc:
        print(f"cchsweep: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if args.command in ("run", "reproduce") or (args.command == "advise" and args.verify is not None):
            print("cchsweep: interrupted; stored trials are kept, rerun the same command to finish", file=sys.stderr)
        elif args.command == "advise":  # advice is stored only once it is complete
            print("cchsweep: interrupted; no advice was stored, rerun the same command", file=sys.stderr)
        else:
            print("cchsweep: interrupted", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
            signal.signal(signal.SIGTERM, previous_term)


def check_switches() -> None:
    """The engine's environment switches (CUDA graphs, TF32, compiled steps) are read in every trial:
    a bad value is caught here, before a sweep starts, rather than as an error row per bundle."""
    from cchsweep.compiled import COMPILE_ENV, env_switch
    from cchsweep.cudagraph import GRAPHS_ENV, TF32_ENV, env_flag

    try:
        for name in (GRAPHS_ENV, TF32_ENV):
            env_flag(name)
        env_switch(COMPILE_ENV)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def check_out_dir(value: str | None, flag: str = "--out") -> Path | None:
    """A report directory that can be made: refused before any work, not after it."""
    if value is None:
        return None
    out = Path(value).expanduser()
    if out.exists() and not out.is_dir():
        raise UsageError(f"{flag} {out} is a file; give a directory for the report")
    parent = next(p for p in (out, *out.absolute().parents) if p.exists())
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {out}: {parent} is not writable; choose another directory")
    return out


def check_advise_flags(args) -> None:
    """Every advise flag checked before the MI estimates start (minutes), not after them."""
    from cchsweep.runner import check_writable, default_storage

    if not 1 <= args.repeats <= MAX_REPEATS:
        raise UsageError(f"--repeats {args.repeats}: give 1 to {MAX_REPEATS} (2 or more give a standard error)")
    if not 0 <= args.seed <= 2**31 - 1 - args.repeats:  # repeat r uses seed + r: splits and networks
        raise UsageError(f"--seed {args.seed}: give a whole number from 0 to {2**31 - 1 - args.repeats:,}")
    verify_flags = (("--verify-seeds", args.verify_seeds), ("--verify-profile", args.verify_profile))
    given = [flag for flag, value in verify_flags if value is not None]
    if args.verify is None and given:  # once ignored without a word
        raise UsageError(f"{', '.join(given)} only apply with --verify K: add it, or drop them")
    args.verify_seeds = 3 if args.verify_seeds is None else args.verify_seeds
    args.verify_profile = "paper" if args.verify_profile is None else args.verify_profile
    if args.verify is not None:
        from searchspaces import STUDIES

        if not args.db:
            raise UsageError("--verify stores its KD trials in the results database: add --db PATH")
        if args.verify < 1:
            raise UsageError(f"--verify {args.verify}: give the number of top teachers to verify, 1 or more")
        if args.verify_seeds < 1:
            raise UsageError(f"--verify-seeds {args.verify_seeds}: give 1 or more seeds (3 by default)")
        if args.verify_profile not in STUDIES["tcga_noise"].profiles:
            raise UsageError(
                f"--verify-profile {args.verify_profile!r}: choose one of {', '.join(STUDIES['tcga_noise'].profiles)}"
            )
    if args.db:
        from cchsweep.store import Store

        db = Path(args.db).expanduser().absolute()
        check_writable(db, default_storage(db))
        Store(db).inspect(deep=True)  # read-only: a foreign, newer, damaged or locked file is refused now
    check_out_dir(args.out)


MAX_REPEATS = 1_000


def check_search_flags(args) -> None:
    """--param, --range, --budget and --target belong to --search; the searched axis is not --set."""
    given = [
        flag
        for flag, value, default in (
            ("--param", args.param, None),
            ("--range", args.value_range, None),
            ("--budget", args.budget, 12),
            ("--target", args.target, "mi_gap"),
        )
        if value != default
    ]
    if given and not args.search:
        raise UsageError(f"{', '.join(given)} only apply to a search: add --search boundary, or drop them")
    searched = [o for o in args.overrides if args.search and o.partition("=")[0].strip() == args.param]
    if searched:
        raise UsageError(f"--set {searched[0]}: the search chooses {args.param}'s values; drop this --set")


def cmd_list(args) -> int:
    from searchspaces import STUDIES

    rows = [
        (
            s.name,
            s.reproduces,
            str(s.grid_size("paper")),
            str(s.grid_size("quick")) if "quick" in s.profiles else "-",
            str(s.grid_size("smoke")),
            s.description,
        )
        for s in STUDIES.values()
    ]
    _print_table(["study", "reproduces", "paper trials", "quick trials", "smoke trials", "description"], rows)
    return 0


def cmd_run(args) -> int:
    from cchsweep.grid import plan
    from cchsweep.runner import (
        check_data,
        check_gpu_request,
        check_reachable,
        check_writable,
        default_storage,
        gpu_per_trial,
        run_sweep,
    )
    from searchspaces import STUDIES, check_known

    check_known([args.study])
    if args.force and args.resume:
        raise UsageError("--force reruns everything and --resume only what is missing: give one of them")
    if args.max_failures < 0:
        raise UsageError(f"--max-failures {args.max_failures}: give 0 or more")
    if args.bundle_size is not None and args.bundle_size < 1:
        raise UsageError(f"--bundle-size {args.bundle_size}: give 1 or more grid points per bundle")
    check_search_flags(args)
    the_plan = plan(STUDIES[args.study], args.profile, args.overrides, args.seeds)
    search = None
    if args.search:
        from cchsweep.search import make_search

        search = make_search(the_plan, args.param, args.value_range, args.budget, args.target)
    if args.gpu != "auto":
        gpu_per_trial(args.gpu, 0.0, {})  # a malformed --gpu is refused before anything starts
        if args.address is None:  # and a GPU share the embedded Ray could never give (runs and dry runs)
            import torch

            check_gpu_request(args.gpu, None, torch.cuda.device_count())
    db = Path(args.db).expanduser().absolute()
    storage = Path(args.storage).expanduser().absolute() if args.storage else default_storage(db)
    check_writable(db, storage)  # a dry run checks what the run would: paths, cluster, data
    check_reachable(args.address)
    data_dir, missing = check_data([the_plan], args.data_dir, args.dry_run)
    from cchsweep.estimate import plan_lines, stored_keys

    if args.dry_run:
        if search is not None:
            others = "; ".join(f"{k} = {v}" for k, v in sorted(search.base.items()))
            print(
                f"plan: {args.study} ({args.profile}): a boundary search of {search.what} along {search.param} "
                f"in [{search.lo:g}, {search.hi:g}], {search.budget} trials (Optuna TPE); the other axes at {others}"
            )
        else:
            done = stored_keys(db, the_plan, args.force)  # refuses a damaged, foreign or newer file, as run does
            print("\n".join(plan_lines(the_plan, db, done, args.bundle_size)))
        if missing:
            print(f"data: {missing} (the run would stop here)")
        return 0
    if search is None:  # what is about to run and how long it should take, once every check passed
        from cchsweep.store import Store

        # read-only first: a foreign, newer or damaged file, or points stored with other settings, are
        # refused in one line before the file is touched (ensure_schema rewrites the views)
        done = stored_keys(db, the_plan, args.force)
        Store(db).ensure_schema()
        print("\n".join(plan_lines(the_plan, db, done, args.bundle_size)), file=sys.stderr, flush=True)
    summary = run_sweep(
        the_plan,
        db,
        storage,
        address=args.address,
        max_failures=args.max_failures,
        force=args.force,
        command=shlex.join(["cchsweep", *sys.argv[1:]]),
        data_dir=data_dir,
        gpu=args.gpu,
        shared_storage=args.shared_storage,
        resume=args.resume,
        search=search,
        bundle_size=args.bundle_size,
    )
    print(
        f"{args.study} ({args.profile}): {summary.n_ok} ok, {summary.n_error} failed, "
        f"{summary.n_skipped} already stored, of {summary.n_trials} trials in {summary.seconds:.0f}s"
    )
    query = f'cchsweep query "select * from results" --db {shlex.quote(args.db)}'
    print(f"results: {db}  (run {summary.run_id}; try `{query}`)")
    if summary.interrupted:
        left = summary.n_trials - summary.n_skipped - summary.n_ok - summary.n_error
        print(
            f"cchsweep: interrupted with {left} trials not run; stored trials are kept, rerun the same command "
            f"to finish",
            file=sys.stderr,
        )
        return 130
    if the_plan.study.task == CALIBRATION_TASK:
        from analysis.calibration import load_calibration, summary_lines

        print("\n".join(summary_lines(load_calibration(db))))
        return 1 if summary.n_error else 0
    from analysis.agreement import verdict_line
    from analysis.frame import load_results

    frame = load_results(db, study=args.study)
    print(verdict_line(frame))
    from analysis.bounds import bound_line

    if (line := bound_line(frame)) is not None:
        print(line)
    if search is not None:
        from cchsweep.study import counted

        c = summary.crossing
        what = f"{search.what} along {search.param} in [{search.lo:g}, {search.hi:g}]"
        if c is None:
            print(f"boundary: {what}: no crossing among {summary.n_ok} trials (the sign never changed)")
        else:
            note = (
                "" if c.n_sign_changes == 1 else f"; {c.n_sign_changes} sign changes (noise): the interval spans them"
            )
            print(
                f"boundary: {what} crosses zero at {search.param} = {c.estimate:.4f}, "
                f"interval [{c.lo:.4f}, {c.hi:.4f}] from {counted(c.n_points, 'trial')}{note}"
            )
    return 1 if summary.n_error else 0


def cmd_reproduce(args) -> int:
    from cchsweep.reproduce import OFFLINE, reproduce
    from cchsweep.runner import default_storage

    given = [s.strip() for s in args.studies.split(",") if s.strip()] if args.studies is not None else list(OFFLINE)
    studies = list(dict.fromkeys(given))  # a study named twice runs once
    check_out_dir(args.out)
    if not studies:
        raise UsageError("--studies is empty: name one or more studies, e.g. --studies tcga_noise,mnist_blur")
    db = Path(args.db).expanduser().absolute()
    storage = Path(args.storage).expanduser().absolute() if args.storage else default_storage(db)
    return reproduce(
        studies,
        args.profile,
        db,
        storage,
        Path(args.out).expanduser(),
        data_dir=args.data_dir,
        address=args.address,
        dry_run=args.dry_run,
        command=shlex.join(["cchsweep", *sys.argv[1:]]),
    )


def cmd_query(args) -> int:
    from cchsweep.store import Store

    columns, rows = Store(Path(args.db).expanduser()).query(args.sql)
    if args.format == "csv":
        w = csv.writer(sys.stdout)
        w.writerow(columns)
        w.writerows(rows)
    elif args.format == "json":
        print(json.dumps([_json_safe(dict(zip(columns, r))) for r in rows], default=str, indent=1, allow_nan=False))
    else:
        _print_table(columns, [[_cell(v) for v in r] for r in rows])
    return 0


def _json_safe(value):
    """A query's value as strict JSON holds it: NaN and infinities (DuckDB's, e.g. a NaN MI gap) become
    null, which JSON has; NaN and Infinity are not JSON, and strict parsers refuse them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def cmd_status(args) -> int:
    from cchsweep.store import Store

    columns, rows = Store(Path(args.db).expanduser()).run_table()
    _print_table(columns, [[_cell(v) for v in r] for r in rows])
    return 0


def cmd_report(args) -> int:
    if args.all == (args.study is not None):
        raise UsageError("give a study to report on, or --all for every stored study and the scorecard")
    from searchspaces import check_known

    check_known([args.study] if args.study is not None else [])
    check_out_dir(args.out)
    if args.all:
        from analysis.overview import write_all

        page = write_all(Path(args.db).expanduser(), Path(args.out).expanduser())
        print(f"report: {page}")
        return 0
    from analysis.report import write_report

    page = write_report(Path(args.db).expanduser(), args.study, Path(args.out).expanduser())
    print(f"report: {page}")
    return 0


def cmd_advise(args) -> int:
    from cchsweep.advise import advise_all, format_advice, format_consensus, store_advice, write_advice_report
    from cchsweep.raystart import new_run_id

    check_advise_flags(args)
    teachers = args.teachers.split(",") if args.teachers is not None else None
    estimators = [e.strip() for e in args.estimator.split(",") if e.strip()]
    results = advise_all(
        Path(args.data).expanduser(),
        args.student,
        teachers,
        estimators=estimators,
        repeats=args.repeats,
        seed=args.seed,
    )
    result = results[0]  # --verify and --out follow the first estimator's ranking
    print("\n\n".join(format_advice(r) for r in results))
    if len(results) > 1:
        print("\n" + format_consensus(results))
    if args.db:
        run_id = new_run_id("advise")
        store_advice(Path(args.db).expanduser(), results, run_id)
        print(f"stored as run {run_id} in {args.db} (table advice, one row per teacher and estimator)")
    if args.verify is not None:
        from cchsweep.verify import format_verification, verify, write_verification_report

        checked = verify(
            result,
            args.verify,
            Path(args.db).expanduser(),
            seeds=args.verify_seeds,
            profile=args.verify_profile,
            command=shlex.join(["cchsweep", *sys.argv[1:]]),
        )
        print(format_verification(checked))
        if args.out:
            print(f"verification report: {write_verification_report(checked, Path(args.out).expanduser())}")
    if args.out:
        out = Path(args.out).expanduser()
        for r in results:  # several estimators: one folder each
            print(f"report: {write_advice_report(r, out / r.estimator if len(results) > 1 else out)}")
    return 0


COMMANDS = {
    "list": cmd_list,
    "advise": cmd_advise,
    "run": cmd_run,
    "query": cmd_query,
    "report": cmd_report,
    "reproduce": cmd_reproduce,
    "status": cmd_status,
}


def _cell(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _print_table(columns, rows) -> None:
    rows = [[str(c) for c in r] for r in rows]
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip())
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
    print(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")


if __name__ == "__main__":
    sys.exit(main())
