"""TCGA multi-omics cohorts (paper Section 4.4, Appendix E): loading, leak-free preprocessing, noise.

A cohort is a directory with one CSV or Parquet file per modality (first column `patient`, then
numeric features) and `labels.csv` (`patient,subtype`). Modalities are joined on `patient`.

Preprocessing per modality, fitted on the TRAIN rows of a seeded stratified split only:
  1. impute missing values with the train median (robust to the heavy tails of CNV and RPPA;
     a column with no observed train value is filled with 0);
  2. standardize with the train mean and population std (ddof=0; std 0 is replaced by 1 so a
     constant column becomes all zeros instead of NaN);
  3. keep the top `n_features` by mRMR (Ding and Peng, 2005) in the "FCQ" variant of the
     mrmr-selection package: relevance = ANOVA F-statistic, redundancy = mean absolute Pearson
     correlation with the already selected features, score = relevance / redundancy.
The test rows are only transformed with the train statistics.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

try:
    import polars as pl
except ImportError:  # the MNIST and synthetic engine also runs where only torch is (benchmarks/cuda_check.py)
    pl = None  # type: ignore[assignment]

from cchsweep.errors import UsageError

LABELS_STEM = "labels"
PATIENT = "patient"
SUBTYPE = "subtype"
SUFFIXES = (".csv", ".parquet")
# Common spellings of "missing" in exported omics tables; polars would otherwise read a column
# holding any of them as text and we would reject it as non-numeric.
NULL_VALUES = ["", "NA", "N/A", "NaN", "nan", "NULL", "null"]
# mrmr-selection's floor on |correlation|: keeps the quotient finite for uncorrelated features.
REDUNDANCY_FLOOR = 1e-3


@dataclass(frozen=True)
class Cohort:
    """Labeled patients present in every requested modality, in sorted patient order."""

    name: str
    patients: list[str]
    x: dict[str, np.ndarray]  # modality -> (n_patients, n_features) float64, NaN where missing
    features: dict[str, list[str]]  # modality -> column names, aligned with x[modality]
    y: np.ndarray  # (n_patients,) int64 index into `classes`
    classes: list[str]  # sorted subtype names

    @property
    def modalities(self) -> list[str]:
        return list(self.x)


@dataclass(frozen=True)
class Prepared:
    """One seed's split: imputed, standardized, mRMR-selected float32 arrays per modality."""

    seed: int
    x_train: dict[str, np.ndarray]  # modality -> (n_train, k) float32
    x_test: dict[str, np.ndarray]  # modality -> (n_test, k) float32
    y_train: np.ndarray  # int64
    y_test: np.ndarray  # int64
    features: dict[str, list[str]]  # modality -> selected names, in mRMR order (= column order)
    train_std: dict[str, np.ndarray]  # modality -> (k,) std of x_train columns (1, or 0 if constant)
    classes: list[str]
    train_patients: list[str]
    test_patients: list[str]


def _modality_files(cohort_dir: Path) -> dict[str, Path]:
    if not cohort_dir.is_dir():
        problem = "is a file, not a directory" if cohort_dir.exists() else "does not exist"
        raise UsageError(
            f"cohort directory {cohort_dir} {problem}; pass a directory holding one CSV or "
            f"Parquet file per modality and labels.csv"
        )
    files: dict[str, Path] = {}
    for path in sorted(cohort_dir.iterdir()):
        if path.suffix.lower() not in SUFFIXES or not path.is_file():
            continue
        if path.stem in files:
            raise UsageError(
                f"modality {path.stem!r} has both {files[path.stem].name} and {path.name} in "
                f"{cohort_dir}; keep one of them"
            )
        files[path.stem] = path
    return files


DIGESTED = re.compile(r"^(?P<path>.+)@sha256:[0-9a-f]{12}$")


def cohort_path(cohort: str) -> str:
    """A cohort value without the content digest `advise --verify` appends to it (PATH@sha256:HEX): the
    digest is in the value, and so in every trial and artifact key, so results from the files as they
    were are not taken for the files as they are."""
    match = DIGESTED.match(cohort)
    return match["path"] if match else cohort


def content_digest(cohort_dir: str | Path, modalities: list[str]) -> str:
    """12 hex digits of the sha256 of the modalities' files and labels.csv (names and bytes): what a
    result computed from them depends on, so a changed file is a new cohort to the keys that carry it."""
    files = _modality_files(Path(cohort_dir))
    digest = hashlib.sha256()
    for stem in sorted({*modalities, LABELS_STEM}):
        if stem in files:
            digest.update(f"{files[stem].name}\0".encode())
            digest.update(files[stem].read_bytes())
    return digest.hexdigest()[:12]


def list_modalities(cohort_dir: str | Path) -> list[str]:
    """The modality names in a cohort directory: file stems other than `labels`, sorted."""
    return [stem for stem in _modality_files(Path(cohort_dir)) if stem != LABELS_STEM]


def _read_table(path: Path) -> pl.DataFrame:
    try:
        if path.suffix.lower() == ".parquet":
            frame = pl.read_parquet(path)
        else:
            _check_csv_shape(path)
            frame = pl.read_csv(path, infer_schema_length=None, null_values=NULL_VALUES)
    except pl.exceptions.NoDataError:
        raise UsageError(f"{path} is empty; it needs a header row and one row per patient") from None
    except (pl.exceptions.ComputeError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"cannot read {path} ({first}); check that it is a valid table") from None
    if frame.height == 0:
        raise UsageError(f"{path} is empty; it needs a header row and one row per patient")
    if PATIENT not in frame.columns:
        raise UsageError(f"{path} has no {PATIENT!r} column; make the first column {PATIENT!r}")
    # Barcodes that look numeric must still join as text across files.
    frame = frame.with_columns(pl.col(PATIENT).cast(pl.String)).filter(pl.col(PATIENT).is_not_null())
    duplicated = frame.filter(pl.col(PATIENT).is_duplicated())[PATIENT].unique().sort()
    if len(duplicated):
        raise UsageError(f"{path} lists patient {duplicated[0]!r} more than once; keep one row per patient")
    return frame


def _check_csv_shape(path: Path) -> None:
    """A repeated column name or a row of another width than the header is refused: polars would rename
    the column (X_duplicated_0) or pad the short row with missing values, and both would train."""
    import csv

    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return  # polars says what is wrong with it
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return
    widths = {line.count(",") for line in lines}
    rows = list(csv.reader(lines)) if len(widths) > 1 or '"' in lines[0] else [lines[0].split(",")]
    header = [c.strip() for c in rows[0]]
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:
        raise UsageError(f"{path} names column {repeated[0]!r} more than once; give each column its own name")
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise UsageError(
                f"{path} row {number} has {len(row)} fields, the header {len(header)}; give every row one value "
                f"per column (an empty field for a missing value)"
            )


def _read_modality(path: Path) -> pl.DataFrame:
    frame = _read_table(path)
    features = [c for c in frame.columns if c != PATIENT]
    if not features:
        raise UsageError(f"{path} has no feature columns; add numeric columns after {PATIENT!r}")
    for column in features:
        dtype = frame.schema[column]
        # An all-missing column is read as text; it is numeric data that happens to be absent.
        if not dtype.is_numeric() and frame[column].null_count() < frame.height:
            text = frame[column].drop_nulls()
            unparsable = text.filter(text.cast(pl.Float64, strict=False).is_null())
            bad = (unparsable if len(unparsable) else text)[0]
            raise UsageError(
                f"{path} column {column!r} holds non-numeric values (e.g. {bad!r}); fix or remove that column"
            )
    return frame.with_columns(pl.col(features).cast(pl.Float64))


def _read_labels(files: dict[str, Path], cohort_dir: Path) -> pl.DataFrame:
    if LABELS_STEM not in files:
        raise UsageError(f"{cohort_dir} has no labels.csv; add one with columns {PATIENT},{SUBTYPE}")
    path = files[LABELS_STEM]
    frame = _read_table(path)
    if SUBTYPE not in frame.columns:
        raise UsageError(f"{path} has no {SUBTYPE!r} column (found {frame.columns}); name the label column {SUBTYPE!r}")
    return frame.select(PATIENT, pl.col(SUBTYPE).cast(pl.String)).filter(pl.col(SUBTYPE).is_not_null())


def load_cohort(cohort_dir: str | Path, modalities: list[str], min_modalities: int = 1) -> Cohort:
    """Inner-join `modalities` on patient, keep labeled patients; see `Cohort`."""
    cohort_dir = Path(cohort_dir)
    files = _modality_files(cohort_dir)
    available = [stem for stem in files if stem != LABELS_STEM]
    modalities = list(modalities)
    if len(set(modalities)) != len(modalities):
        raise UsageError(f"modalities {modalities} name one more than once; name each once")
    if len(modalities) < min_modalities:
        raise UsageError(
            f"{min_modalities} modalities are needed but {len(modalities)} given ({modalities}); "
            f"choose from {available}"
        )
    for name in modalities:
        if name not in available:
            raise UsageError(f"unknown modality {name!r} in {cohort_dir}; available: {', '.join(available) or 'none'}")

    labels = _read_labels(files, cohort_dir)
    tables = {name: _read_modality(files[name]) for name in modalities}
    common: set[str] | None = None
    for table in tables.values():
        ids = set(table[PATIENT].to_list())
        common = ids if common is None else common & ids
    if not common:
        raise UsageError(
            f"modalities {', '.join(modalities)} in {cohort_dir} share no patient; check that "
            f"the {PATIENT!r} columns use the same identifiers"
        )
    labels = labels.filter(pl.col(PATIENT).is_in(sorted(common))).sort(PATIENT)
    if labels.height == 0:
        raise UsageError(
            f"none of the {len(common)} patients in {', '.join(modalities)} has a label in "
            f"{files[LABELS_STEM].name}; check the {PATIENT!r} identifiers"
        )
    classes = sorted(labels[SUBTYPE].unique().to_list())
    if len(classes) < 2:
        raise UsageError(
            f"the {labels.height} labeled patients of {', '.join(modalities)} all have subtype "
            f"{classes[0]!r}; classification needs at least two classes"
        )
    patients = labels[PATIENT].to_list()
    x, features = {}, {}
    for name, table in tables.items():
        rows = table.filter(pl.col(PATIENT).is_in(patients)).sort(PATIENT)
        values = rows.drop(PATIENT).to_numpy().astype(np.float64)
        values[~np.isfinite(values)] = np.nan  # an infinity is no measurement either
        x[name] = values
        features[name] = [c for c in rows.columns if c != PATIENT]
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[s] for s in labels[SUBTYPE].to_list()], dtype=np.int64)
    return Cohort(name=cohort_dir.name, patients=patients, x=x, features=features, y=y, classes=classes)


def _f_statistic(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """One-way ANOVA F per column (as sklearn's f_classif); NaN (constant column) becomes 0."""
    classes, y_idx = np.unique(y, return_inverse=True)
    n, k = len(y), len(classes)
    counts = np.bincount(y_idx, minlength=k).astype(np.float64)
    onehot = np.zeros((n, k))
    onehot[np.arange(n), y_idx] = 1.0
    group_means = (onehot.T @ x) / counts[:, None]
    grand_mean = x.mean(axis=0)
    between = (counts[:, None] * (group_means - grand_mean) ** 2).sum(axis=0) / (k - 1)
    within = ((x - group_means[y_idx]) ** 2).sum(axis=0) / (n - k)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = between / within
    return np.nan_to_num(f, nan=0.0, posinf=np.inf)


def mrmr_select(x: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    """Column indices of up to `k` features chosen by mRMR, in selection order.

    Same algorithm as `mrmr.mrmr_classif(X, y, K)` of mrmr-selection 0.2.8 (F-statistic relevance,
    mean |Pearson| redundancy floored at 1e-3, quotient score, first maximum wins), vectorized:
    each step is one matrix-vector product instead of a pandas/joblib round trip. Like the package,
    only features with positive relevance are candidates, so fewer than `k` may come back when
    the data have fewer informative columns. `x` must be finite (impute first).
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or not np.isfinite(x).all():
        raise ValueError("mrmr_select needs a finite 2-D array; impute missing values first")
    relevance = _f_statistic(x, np.asarray(y))
    candidates = np.flatnonzero(relevance > 0)
    k = min(int(k), len(candidates))
    # z-scores make each Pearson correlation a dot product; constant columns get 0 (then floored).
    std = x.std(axis=0)
    z = np.divide(x - x.mean(axis=0), std, out=np.zeros_like(x), where=std > 0)
    z = z[:, candidates]
    rel = relevance[candidates]
    redundancy_sum = np.zeros(len(candidates))
    available = np.ones(len(candidates), dtype=bool)
    chosen: list[int] = []
    for step in range(k):
        if step == 0:
            score = rel.copy()
        else:
            corr = np.abs(z.T @ z[:, chosen[-1]]) / len(x)
            redundancy_sum += np.clip(corr, REDUNDANCY_FLOOR, None)
            denominator = redundancy_sum / step
            # The package scores a perfectly redundant feature 0 (denominator 1 -> inf); a tolerance
            # stands in for its exact comparison, which rounding in the correlation can miss.
            denominator[denominator >= 1.0 - 1e-9] = np.inf
            with np.errstate(invalid="ignore"):
                score = rel / denominator
            score = np.nan_to_num(score, nan=0.0)  # inf relevance over inf redundancy
        score[~available] = -np.inf
        best = int(np.argmax(score))
        chosen.append(best)
        available[best] = False
    return candidates[np.array(chosen, dtype=np.int64)]


def _split(y: np.ndarray, seed: int, test_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import StratifiedShuffleSplit  # here: a 0.8 s import

    splitter = StratifiedShuffleSplit(n_splits=1, test_size=test_fraction, random_state=seed)
    try:
        train, test = next(splitter.split(np.zeros((len(y), 1)), y))
    except ValueError as exc:
        raise UsageError(
            f"cannot split {len(y)} patients with test fraction {test_fraction} ({exc}); "
            f"use a cohort with at least two patients per class or another test fraction"
        ) from None
    # Sorted rows keep patient order stable; the split itself is what the seed decides.
    return np.sort(train), np.sort(test)


def prepare(cohort: Cohort, seed: int, test_fraction: float = 0.1, n_features: int = 100) -> Prepared:
    """Stratified split for `seed`, then train-fitted impute/standardize/mRMR per modality."""
    if not 0.0 < test_fraction < 1.0:
        raise UsageError(f"test_fraction={test_fraction} must lie strictly between 0 and 1, e.g. 0.1")
    if n_features < 1:
        raise UsageError(f"n_features={n_features} must be at least 1, e.g. 100")
    train, test = _split(cohort.y, seed, test_fraction)
    y_train = cohort.y[train]
    x_train, x_test, features, train_std = {}, {}, {}, {}
    for name, values in cohort.x.items():
        fit, apply = values[train], values[test]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # "All-NaN slice": filled with 0 below
            median = np.nanmedian(fit, axis=0)
        median = np.nan_to_num(median, nan=0.0)
        fit = np.where(np.isnan(fit), median, fit)
        apply = np.where(np.isnan(apply), median, apply)
        mean, std = fit.mean(axis=0), fit.std(axis=0)
        if not (std > 0).any():  # it once trained on zero features (mRMR keeps no constant column)
            raise UsageError(
                f"modality {name!r} of {cohort.name} has no feature that varies over the {len(train)} training "
                f"patients of seed {seed} (every value missing, infinite or the same); check its file"
            )
        std = np.where(std > 0, std, 1.0)
        fit, apply = (fit - mean) / std, (apply - mean) / std
        if fit.shape[1] > n_features:
            keep = mrmr_select(fit, y_train, n_features)
        else:
            keep = np.arange(fit.shape[1])
        x_train[name] = fit[:, keep].astype(np.float32)
        x_test[name] = apply[:, keep].astype(np.float32)
        features[name] = [cohort.features[name][i] for i in keep]
        train_std[name] = fit[:, keep].std(axis=0)
    return Prepared(
        seed=seed,
        x_train=x_train,
        x_test=x_test,
        y_train=y_train,
        y_test=cohort.y[test],
        features=features,
        train_std=train_std,
        classes=list(cohort.classes),
        train_patients=[cohort.patients[i] for i in train],
        test_patients=[cohort.patients[i] for i in test],
    )


def add_noise(x: np.ndarray, level: float, train_std: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """`x` plus zero-mean Gaussian noise whose std is `level` x each feature's TRAIN std.

    `level` is the paper's noise level as a fraction (0.2 = 20%). On `Prepared` arrays the train
    std is 1, so the noise std is `level` itself. The draw is rng.standard_normal scaled by the
    level, so one rng state gives the same noise pattern at every level (common random numbers
    across a noise sweep). Returns a new array of x's dtype.
    """
    if not 0.0 <= level <= 1.0:
        raise UsageError(f"noise level {level} must lie in [0, 1] (a fraction: 0.2 means 20%)")
    train_std = np.asarray(train_std, dtype=np.float64)
    if x.ndim != 2 or train_std.shape != (x.shape[1],):
        raise UsageError(
            f"train_std has shape {train_std.shape} but x has {x.shape[-1]} features; pass the "
            f"train std of the same modality"
        )
    noise = rng.standard_normal(x.shape) * (level * train_std)
    return (x + noise).astype(x.dtype, copy=False)
