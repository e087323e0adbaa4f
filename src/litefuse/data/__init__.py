"""Data: pairing of source images in folders and training datasets."""

from .pairs import PAIR_LAYOUTS, Pair, PairProblem, find_pairs

__all__ = ["PAIR_LAYOUTS", "Pair", "PairProblem", "find_pairs"]
