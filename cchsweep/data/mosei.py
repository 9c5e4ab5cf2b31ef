"""CMU-MOSEI (paper Section 4.3, Appendix D, Algorithm 2) from the common preprocessed pickle.

The features cannot be downloaded here (hundreds of MB behind registration-free but online
sources); the user supplies the MulT-style pickle `mosei_senti_data.pkl` (yaohungt/
Multimodal-Transformer `src/dataset.py`), which already applies Algorithm 2's alignment and
length control (L = 50, zero right-padding):

    {"train" | "valid" | "test": {"text":   (N, L, 300) float,
                                  "audio":  (N, L, 74)  float (may hold -inf),
                                  "vision": (N, L, D_v) float (35 Facet features in MulT's file;
                                                               the paper's 713-d also works),
                                  "labels": (N, 1, 1) sentiment score in [-3, 3],
                                  "id":     (N, ...) segment ids (not used)}}

Where: `$CCHSWEEP_MOSEI_PKL` if set, else `<data_dir>/mosei/mosei_senti_data.pkl`.

On load: every modality's non-finite values (audio's -inf padding, any NaN) become 0; feature
dimensions and L are read from the arrays (never assumed); labels are binarized as in
Algorithm 2: 1 if score > 0 else 0 (a score of exactly 0 is negative).

Pickle is the format, and unpickling can run code: only load files you trust. As a guard, the
unpickler here resolves only the globals that numpy arrays, dicts and strings need and rejects
anything else with a UsageError.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cchsweep.errors import UsageError

FILENAME = "mosei_senti_data.pkl"
SUBDIR = "mosei"
PATH_ENV = "CCHSWEEP_MOSEI_PKL"
SPLITS = ("train", "valid", "test")
MODALITIES = ("text", "audio", "vision")
LAYOUT = (
    "a pickled dict {'train','valid','test'} of dicts with 'text' (N,50,300), 'audio' (N,50,74), "
    "'vision' (N,50,D) and 'labels' (N,1,1) sentiment in [-3,3] (MulT's mosei_senti_data.pkl)"
)

# What numpy arrays (and the dict/list/str containers around them) need to be rebuilt, nothing more.
_ALLOWED = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),
    ("collections", "OrderedDict"),
    ("builtins", "dict"),
    ("builtins", "list"),
    ("builtins", "tuple"),
    ("builtins", "str"),
    ("builtins", "bytes"),
    ("builtins", "bytearray"),
    ("builtins", "int"),
    ("builtins", "float"),
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a MOSEI feature file")
        return super().find_class(module, name)


@dataclass(frozen=True)
class MoseiSplit:
    x: dict[str, np.ndarray]  # modality -> (N, L, D) float32, non-finite values set to 0
    y: np.ndarray  # (N,) int64, 1 if sentiment > 0 else 0
    score: np.ndarray  # (N,) float32, the raw sentiment score

    def __len__(self) -> int:
        return len(self.y)


def default_path(data_dir: str | Path | None) -> Path:
    """$CCHSWEEP_MOSEI_PKL if set, else <data_dir>/mosei/mosei_senti_data.pkl."""
    env = os.environ.get(PATH_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    if data_dir is None:
        raise UsageError(
            f"the MOSEI studies need a data directory holding {SUBDIR}/{FILENAME}; pass "
            f"--data-dir, set CCHSWEEP_DATA, or set ${PATH_ENV} to the pickle"
        )
    return Path(data_dir) / SUBDIR / FILENAME


def missing_error(path: Path) -> UsageError:
    return UsageError(
        f"CMU-MOSEI features not found: expected {path}, {LAYOUT}; they cannot be downloaded here: copy "
        f"the file there, pass another --data-dir, or set ${PATH_ENV} to its path"
    )


def check_file(path: Path) -> None:
    if not path.is_file():
        raise missing_error(path)


def _read(path: Path) -> dict:
    check_file(path)
    try:
        with open(path, "rb") as f:
            data = _ArrayUnpickler(f).load()
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        ImportError,
        IndexError,
        KeyError,
    ) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"cannot read {path} as a MOSEI pickle ({first}); expected {LAYOUT}") from None
    return data


def _split(path: Path, name: str, raw) -> MoseiSplit:
    where = f"{path} split {name!r}"
    if not isinstance(raw, dict):
        raise UsageError(f"{where} is a {type(raw).__name__}, not a dict; expected {LAYOUT}")
    missing = [k for k in (*MODALITIES, "labels") if k not in raw]
    if missing:
        raise UsageError(
            f"{where} lacks {', '.join(missing)} (has {', '.join(map(str, raw)) or 'nothing'}); expected {LAYOUT}"
        )
    x: dict[str, np.ndarray] = {}
    n: int | None = None
    for m in MODALITIES:
        try:
            a = np.asarray(raw[m], dtype=np.float32)
        except (TypeError, ValueError):
            raise UsageError(f"{where} {m!r} is not a numeric array; expected {LAYOUT}") from None
        if a.ndim != 3:
            raise UsageError(f"{where} {m!r} has shape {a.shape}; it must be 3-D (N, L, D), {LAYOUT}")
        if n is not None and len(a) != n:
            raise UsageError(
                f"{where}: {m!r} has {len(a)} rows but text has {n}; every modality and the labels need the same N"
            )
        n = len(a)
        x[m] = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)  # audio's -inf padding, any NaN -> 0
    try:
        labels = np.asarray(raw["labels"], dtype=np.float32)
    except (TypeError, ValueError):
        raise UsageError(f"{where} 'labels' is not a numeric array; expected {LAYOUT}") from None
    if labels.ndim == 0 or len(labels) != n or labels.size != n:
        raise UsageError(
            f"{where}: 'labels' has shape {labels.shape} but the modalities have {n} rows; "
            f"expected (N,1,1) with one sentiment score per segment"
        )
    score = labels.reshape(n)
    if not np.isfinite(score).all():
        raise UsageError(f"{where}: 'labels' holds non-finite sentiment scores; expected scores in [-3, 3]")
    if n == 0:
        raise UsageError(f"{where} has no segments")
    return MoseiSplit(x=x, y=(score > 0).astype(np.int64), score=score)


def load_mosei(path: str | Path) -> dict[str, MoseiSplit]:
    """{'train', 'valid', 'test'} -> MoseiSplit, validated (see the module doc); UsageError if not."""
    path = Path(path)
    data = _read(path)
    if not isinstance(data, dict):
        raise UsageError(f"{path} holds a {type(data).__name__}, not a dict; expected {LAYOUT}")
    missing = [s for s in SPLITS if s not in data]
    if missing:
        raise UsageError(
            f"{path} lacks split {', '.join(missing)} (has {', '.join(map(str, data))}); expected {LAYOUT}"
        )
    splits = {s: _split(path, s, data[s]) for s in SPLITS}
    for m in MODALITIES:
        dims = {s: splits[s].x[m].shape[2] for s in SPLITS}
        if len(set(dims.values())) != 1:
            raise UsageError(f"{path}: {m!r} has feature dimensions {dims} across splits; they must agree")
    return splits
