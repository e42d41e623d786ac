"""Small shared helpers: integer seeds, numpy's global RNG seeded for a block, JSON conversion."""

from __future__ import annotations

import numpy as np

__all__ = ["as_seed", "resolve_seed", "seeded_global_random", "to_jsonable"]


def as_seed(random_state) -> int | None:
    """An int seed (or None) from None, an int or a numpy Generator (which is advanced)."""
    if random_state is None or isinstance(random_state, (int, np.integer)):
        return None if random_state is None else int(random_state)
    return int(np.random.default_rng(random_state).integers(2**31 - 1))


def resolve_seed(random_state) -> int:
    """An int seed for one fit, as scikit-learn reads ``random_state``: an int is itself, a numpy
    Generator or RandomState draws one, and None draws one from fresh operating-system entropy
    (a different fit each time). Everything a fit seeds is derived from this one int."""
    if isinstance(random_state, (bool, np.bool_)):
        raise TypeError(f"random_state must be None, an int or a numpy Generator, got {random_state!r}")
    if isinstance(random_state, (int, np.integer)):
        return int(random_state)
    if random_state is None:
        return int(np.random.SeedSequence().generate_state(1)[0] % (2**31 - 1))
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(2**31 - 1))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(2**31 - 1))
    raise TypeError(f"random_state must be None, an int or a numpy Generator, got {type(random_state).__name__}")


class seeded_global_random:
    """Context manager: seed numpy's global RNG (``seed % 2**32``) for a block, then restore it.

    For library code that draws from the global state (econml's uplift bootstrap, dowhy's
    refuters), so that results are reproducible without touching the caller's RNG.
    """

    def __init__(self, seed: int | None):
        self.seed = seed

    def __enter__(self):
        self._state = np.random.get_state()
        np.random.seed(None if self.seed is None else int(self.seed) % (2**32))
        return self

    def __exit__(self, *exc):
        np.random.set_state(self._state)
        return False


def to_jsonable(obj):
    """Recursively convert numpy / pandas values to JSON types; NaN and infinities become None."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [to_jsonable(v) for v in obj.tolist()]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    if obj is None or isinstance(obj, str):
        return obj
    return str(obj)
