"""Data: pairing of source images in folders and training datasets."""

from .datasets import GreyCropDataset, PairCropDataset, collect_pairs, load_luma_u8, pair_hash, split_pairs
from .pairs import PAIR_LAYOUTS, Pair, PairProblem, find_pairs

__all__ = [
    "PAIR_LAYOUTS",
    "Pair",
    "PairProblem",
    "find_pairs",
    "GreyCropDataset",
    "PairCropDataset",
    "collect_pairs",
    "split_pairs",
    "pair_hash",
    "load_luma_u8",
]
