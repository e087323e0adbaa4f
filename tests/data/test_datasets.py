"""Crop datasets and splits on a synthetic folder tree (the ``image_root`` fixture)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from litefuse.colour import rgb_to_ycbcr
from litefuse.data import GreyCropDataset, PairCropDataset, collect_pairs, split_pairs
from litefuse.errors import LitefuseError

pytestmark = pytest.mark.usefixtures("one_thread")  # one torch thread: grouped convs thrash with two on 2 cores


# --------------------------------------------------------------------------------------------
# datasets on a synthetic folder


def test_collect_pairs_walks_parents_and_names_by_dataset(image_root):
    pairs = collect_pairs([image_root])
    assert len(pairs) == 12
    assert {p.name.split("/")[0] for p in pairs} == {"SetA", "SetB"}
    assert collect_pairs([image_root / "ivif" / "SetA", image_root / "ivif"]) == collect_pairs([image_root / "ivif"])
    with pytest.raises(LitefuseError, match="no image pair folders"):
        collect_pairs([image_root / "ivif" / "SetA" / "ir"])


def test_collect_pairs_says_a_folder_cannot_be_read(image_root, monkeypatch):
    # (root reads any folder, so the permission error is raised for the one folder by hand)
    locked, iterdir = image_root / "ivif", Path.iterdir

    def no_listing(self):
        if self == locked:
            raise PermissionError(13, "Permission denied", str(self))
        return iterdir(self)

    monkeypatch.setattr(Path, "iterdir", no_listing)
    with pytest.raises(LitefuseError, match=r"cannot read the folder \(Permission denied\)") as info:
        collect_pairs([locked])
    assert str(locked) in str(info.value)


def test_split_is_deterministic_disjoint_and_stable(image_root):
    pairs = collect_pairs([image_root])
    train, val = split_pairs(pairs, 0.25)
    assert val and train
    assert {p.name for p in train}.isdisjoint({p.name for p in val})
    assert len(train) + len(val) == len(pairs)
    assert split_pairs(list(reversed(pairs)), 0.25)[1] == list(reversed(val))  # order-independent
    # membership depends only on a pair's own name: a sub-set keeps its held-out pairs held out
    sub_train, sub_val = split_pairs(pairs[:10], 0.25)
    assert {p.name for p in sub_val} == {p.name for p in val} & {p.name for p in pairs[:10]}


def test_grey_crops_shape_luma_flips_and_seeding(image_root):
    pairs = collect_pairs([image_root / "ivif"])
    ds = GreyCropDataset(pairs, 32, seed=3)
    assert len(ds) == 16 and not ds.skipped  # both sources of every pair; s07 is reflect-padded
    x = ds[0]
    assert x.shape == (1, 32, 32) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert torch.equal(ds[5], ds[5])  # same (seed, epoch, index) -> same crop
    first = torch.stack([ds[i] for i in range(len(ds))])
    ds.set_epoch(1)
    assert not torch.equal(first, torch.stack([ds[i] for i in range(len(ds))]))
    assert len(GreyCropDataset(pairs, 32, small="skip")) == 14

    # the visible source is stored as BT.601 luminance
    vi = np.asarray(Image.open(pairs[0].b), dtype=np.float64) / 255
    y = np.rint(rgb_to_ycbcr(vi)[0] * 255) / 255
    whole = GreyCropDataset(pairs[:1], (40, 48), train=False)
    np.testing.assert_allclose(whole[1][0].numpy(), y, atol=1e-6)

    # a full-size crop differs from the image only by its flips; all four occur over epochs
    full = GreyCropDataset(pairs[:1], (40, 48), seed=0)
    ir = torch.from_numpy(np.asarray(Image.open(pairs[0].a), dtype=np.float32) / 255)
    variants = {"none": ir, "h": ir.flip(1), "v": ir.flip(0), "hv": ir.flip(0).flip(1)}
    seen = set()
    for epoch in range(16):
        full.set_epoch(epoch)
        seen |= {k for k, v in variants.items() if torch.equal(full[0][0], v)}
    assert seen == set(variants)


def test_pair_crops_are_aligned_and_validation_is_centred(image_root):
    pairs = collect_pairs([image_root / "mff"])  # B = 255 − A
    ds = PairCropDataset(pairs, (24, 30), seed=1)
    for epoch in range(3):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            a, b = ds[i]
            assert a.shape == b.shape == (1, 24, 30)
            torch.testing.assert_close(a + b, torch.ones_like(a), rtol=0, atol=1e-6)
    val = PairCropDataset(pairs, (24, 30), train=False)
    a, _ = val[0]
    src = np.asarray(Image.open(pairs[0].a), dtype=np.float32) / 255
    np.testing.assert_allclose(a[0].numpy(), src[6:30, 7:37], atol=1e-6)  # centre of 36×44




def _position_pair(root: Path, h: int, w: int) -> list:
    """One ir/vi pair whose pixel (r, c) holds 16·r + c (ir) and 255 − that (vi)."""
    img = (16 * np.arange(h)[:, None] + np.arange(w)[None, :]).astype(np.uint8)
    for sub, data in (("ir", img), ("vi", 255 - img)):
        (root / sub).mkdir(parents=True)
        Image.fromarray(data).save(root / sub / "01.png")
    return collect_pairs([root])


def test_training_crops_reach_every_offset_including_the_last_row_and_column(tmp_path):
    """A 12×10 image cut in 8×8 crops has 5×3 top-left corners; over enough epochs the random
    crops take all of them (the bottom row and right column of pixels included), no other."""
    ds = GreyCropDataset(_position_pair(tmp_path, 12, 10), 8, seed=0, flips=False)
    corners = set()
    for epoch in range(120):
        ds.set_epoch(epoch)
        value = int(round(float(ds[0][0, 0, 0]) * 255))
        corners.add(divmod(value, 16))
    assert corners == {(top, left) for top in range(5) for left in range(3)}


def test_small_images_are_reflect_padded_not_edge_padded(tmp_path):
    """A 9×10 image under a 12×13 crop is mirrored about its last row and column (rows
    0..8,7,6,5; columns 0..9,8,7,6), in training and validation alike."""
    pairs = _position_pair(tmp_path, 9, 10)
    img = (16 * np.arange(9)[:, None] + np.arange(10)[None, :]).astype(np.float32)
    expected = img[np.ix_([*range(9), 7, 6, 5], [*range(10), 8, 7, 6])] / 255
    for train in (True, False):
        ds = GreyCropDataset(pairs, (12, 13), train=train, flips=False)
        np.testing.assert_allclose(ds[0][0].numpy(), expected, atol=1e-6)
        np.testing.assert_allclose(ds[1][0].numpy(), 1 - expected, atol=1e-6)  # the visible source


def test_validation_holds_one_centre_crop_per_image_whatever_crops_per_image(tmp_path):
    """``crops_per_image`` multiplies training items only: validation keeps one fixed centre
    crop per image (2 for one pair) for both dataset kinds."""
    pairs = _position_pair(tmp_path, 12, 10)
    assert len(GreyCropDataset(pairs, 8, crops_per_image=4)) == 8
    assert len(PairCropDataset(pairs, 8, crops_per_image=4)) == 4
    val = GreyCropDataset(pairs, 8, train=False, crops_per_image=4)
    assert len(val) == 2 and len(PairCropDataset(pairs, 8, train=False, crops_per_image=4)) == 1
    assert int(round(float(val[0][0, 0, 0]) * 255)) == 16 * 2 + 1  # centre: top (12-8)//2, left (10-8)//2


def test_colour_infrared_is_skipped_as_fuse_refuses_it_but_a_b_colour_is_kept(tmp_path):
    """A false-colour infrared (a thermal palette) was reduced to luminance and trained on in
    silence, while `fuse` refuses it; A/B pairs hold two colour sources by design."""
    from litefuse.data.datasets import decode_pairs

    rng = np.random.default_rng(0)
    colour = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    grey3 = np.repeat(rng.integers(0, 256, (32, 32, 1), dtype=np.uint8), 3, axis=2)  # equal channels: grey
    for layout, a_img in [(("ir", "vi"), colour), (("ir", "vi"), grey3), (("A", "B"), colour)]:
        root = tmp_path / f"{layout[0]}-{a_img is colour}"
        for sub, img in zip(layout, (a_img, colour)):
            (root / sub).mkdir(parents=True)
            Image.fromarray(img).save(root / sub / "01.png")
        usable, skipped = decode_pairs(collect_pairs([root]))
        if layout[0] == "ir" and a_img is colour:
            assert not usable and len(skipped) == 1 and "01.png: infrared image has 3 distinct colour channels" in skipped[0]
        else:
            assert len(usable) == 1 and not skipped


def _sha1_number(name: str) -> float:
    return int.from_bytes(hashlib.sha1(name.encode()).digest()[:8], "big") / 2**64


def test_validation_split_holds_out_exactly_the_names_hashed_below_the_fraction():
    """A pair is held out when the SHA-1 number of its name is below ``val_fraction``; a tiny set
    none of whose names qualifies holds out ``ceil(fraction·n)`` of the lowest-hashed names."""
    from litefuse.data.datasets import split_pairs
    from litefuse.data.pairs import Pair

    pairs = [Pair(f"set/{i:03d}", Path(f"a{i}"), Path(f"b{i}")) for i in range(60)]
    train, val = split_pairs(pairs, 0.25)
    assert {p.name for p in val} == {p.name for p in pairs if _sha1_number(p.name) < 0.25}
    assert len(train) + len(val) == 60 and 5 < len(val) < 30
    small = [p for p in pairs if _sha1_number(p.name) >= 0.05][:3]
    lowest = min(small, key=lambda p: _sha1_number(p.name))
    _, val = split_pairs(small, 0.05)  # ceil(0.15) = 1 pair
    assert [p.name for p in val] == [lowest.name]
    two = [p for p in pairs if _sha1_number(p.name) >= 0.6][:2]
    _, val = split_pairs(two, 0.55)  # ceil(0.55·2) = 2, but never every pair
    assert len(val) == 1
