"""Built-in data: the semi-synthetic generator with known truth and the gold/preference reveal
split (:mod:`.synthetic`), and the loaders of the two real data sets (:mod:`.real`), which read
the raw upstream files or the processed copy bundled in ``data/`` (:mod:`._bundled`)."""

from .real import ENV_VAR, default_data_dir, load_pandalm, load_prd_vicuna80
from .synthetic import RevealedSplit, feature_columns, make_semi_synthetic, reveal_split

__all__ = ["make_semi_synthetic", "reveal_split", "RevealedSplit", "feature_columns",
           "load_pandalm", "load_prd_vicuna80", "default_data_dir", "ENV_VAR"]
