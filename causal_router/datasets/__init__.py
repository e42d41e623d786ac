"""Built-in data: the semi-synthetic generator with known truth and the gold/preference reveal
split (:mod:`.synthetic`), the loaders of the two real data sets (:mod:`.real`), which read
the raw upstream files or the processed copy bundled in ``data/`` (:mod:`._bundled`), and the
K-model generator with its query-level split (:mod:`.multi`)."""

from .multi import (MULTI_COSTS, MULTI_MODELS, PANDALM_COSTS, MultiSplit, heldout_quality, load_pandalm_multi,
                    make_multi_model, reveal_multi_split)
from .real import ENV_VAR, default_data_dir, load_pandalm, load_prd_vicuna80
from .synthetic import SPLIT_BY, RevealedSplit, feature_columns, make_repeated_queries, make_semi_synthetic, reveal_split

__all__ = ["make_semi_synthetic", "make_repeated_queries", "reveal_split", "RevealedSplit", "feature_columns",
           "SPLIT_BY",
           "load_pandalm", "load_prd_vicuna80", "default_data_dir", "ENV_VAR",
           "make_multi_model", "reveal_multi_split", "MultiSplit", "heldout_quality", "load_pandalm_multi",
           "MULTI_MODELS", "MULTI_COSTS", "PANDALM_COSTS"]
