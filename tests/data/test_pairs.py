"""Folder pairing by stem across the recognised layouts."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from litefuse.data import find_pairs
from litefuse.errors import InputError


def _img(path, value=128):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((12, 12), value, np.uint8)).save(path)


@pytest.mark.parametrize("layout", [("ir", "vi"), ("infrared", "visible"), ("Inf", "Vis"), ("A", "B")])
def test_layouts_and_mixed_extensions(tmp_path, layout):
    a, b = layout
    _img(tmp_path / a / "01.png")
    _img(tmp_path / b / "01.jpg")
    _img(tmp_path / a / "02.bmp")
    _img(tmp_path / b / "02.tif")
    pairs, problems = find_pairs(tmp_path)
    assert [p.name for p in pairs] == ["01", "02"] and not problems
    assert pairs[0].b.suffix == ".jpg"


def test_unpaired_and_duplicates_reported(tmp_path):
    _img(tmp_path / "ir" / "a.png")
    _img(tmp_path / "vi" / "a.png")
    _img(tmp_path / "ir" / "lonely.png")
    _img(tmp_path / "vi" / "other.png")
    _img(tmp_path / "vi" / "dup.png")
    _img(tmp_path / "vi" / "dup.jpg")
    (tmp_path / "ir" / "notes.txt").write_text("ignored")
    pairs, problems = find_pairs(tmp_path)
    assert [p.name for p in pairs] == ["a"]
    text = "\n".join(map(str, problems))
    assert "lonely.png: no partner in vi/" in text
    assert "other.png: no partner in ir/" in text
    assert "duplicate stem" in text


def test_a_partner_differing_in_case_is_named(tmp_path):
    _img(tmp_path / "ir" / "FLIR_01.png")
    _img(tmp_path / "vi" / "flir_01.jpg")
    pairs, problems = find_pairs(tmp_path)
    assert not pairs
    text = "\n".join(map(str, problems))
    assert "FLIR_01.png: no partner in vi/ (flir_01.jpg there differs in letter case or Unicode form" in text
    assert "flir_01.jpg: no partner in ir/ (FLIR_01.png there differs in letter case or Unicode form" in text
    # é as one character and as e + a combining accent (macOS writes the second)
    _img(tmp_path / "ir" / "caf\u00e9.png")
    _img(tmp_path / "vi" / "cafe\u0301.png")
    text = "\n".join(map(str, find_pairs(tmp_path)[1]))
    assert "caf\u00e9.png: no partner in vi/ (cafe\u0301.png there differs" in text


def test_missing_layout_is_one_clear_error(tmp_path):
    (tmp_path / "left").mkdir()
    with pytest.raises(InputError, match="no source sub-folders"):
        find_pairs(tmp_path)
    with pytest.raises(InputError, match="directory not found"):
        find_pairs(tmp_path / "nope")


def test_tno_pairs(shared):
    pairs, problems = find_pairs(shared / "data" / "ivif" / "TNO")
    assert len(pairs) == 17 and not problems


def test_a_parent_of_pair_folders_is_named_as_such(tmp_path):
    """``fuse --input data/ivif`` said only 'no source sub-folders found'; it now names the pair
    folders below, which commands taking a single pair folder want one of."""
    for name in ("MSRS", "TNO"):
        for sub in ("ir", "vi"):
            (tmp_path / name / sub).mkdir(parents=True)
    (tmp_path / "notes").mkdir()
    with pytest.raises(InputError, match=r"it holds pair folders \(MSRS, TNO\): give one of them"):
        find_pairs(tmp_path)


def test_a_name_template_must_fit_the_whole_stem(tmp_path):
    """'{stem}_fused' names a_fused.png; a_fused_old.png is another file, not a second 'a'."""
    from litefuse.data.pairs import match_stems

    _img(tmp_path / "ir" / "a.png")
    _img(tmp_path / "fused" / "a_fused.png")
    _img(tmp_path / "fused" / "a_fused_old.png")
    matched, problems = match_stems({"ir": tmp_path / "ir", "fused": tmp_path / "fused"}, {"fused": "{stem}_fused"})
    assert matched == {"a": {"ir": tmp_path / "ir" / "a.png", "fused": tmp_path / "fused" / "a_fused.png"}}
    assert [p.name for p in problems] == ["a_fused_old"]


@pytest.mark.parametrize("template", ["{stem}_{stem}", "fused", ""])
def test_a_name_template_needs_exactly_one_stem(tmp_path, template):
    from litefuse.data.pairs import match_stems
    from litefuse.errors import OptionError

    _img(tmp_path / "ir" / "a.png")
    _img(tmp_path / "fused" / "a.png")
    with pytest.raises(OptionError, match="exactly one"):
        match_stems({"ir": tmp_path / "ir", "fused": tmp_path / "fused"}, {"fused": template})


def test_guess_template_prefers_the_shorter_of_equally_good_templates():
    from litefuse.data.pairs import guess_template

    assert guess_template(["11_f"], ["1", "11"]) == ("{stem}_f", 1)
    assert guess_template(["x_fused", "y_fused", "fused_x"], ["x", "y"]) == ("{stem}_fused", 2)
    assert guess_template(["x"], ["x"]) is None


def test_hidden_files_are_not_images_to_pair(tmp_path):
    """macOS's ._name.png resource forks and other dot-files are neither pairs nor problems."""
    _img(tmp_path / "ir" / "01.png")
    _img(tmp_path / "vi" / "01.png")
    (tmp_path / "ir" / "._01.png").write_bytes(b"\0\5\26\7")
    pairs, problems = find_pairs(tmp_path)
    assert [p.name for p in pairs] == ["01"] and not problems


def test_pair_folders_are_searched_depth_levels_down_and_no_further(tmp_path):
    from litefuse.data.pairs import pair_folders

    _img(tmp_path / "x" / "y" / "ir" / "01.png")
    _img(tmp_path / "x" / "y" / "vi" / "01.png")
    assert pair_folders(tmp_path, depth=1) == []
    assert pair_folders(tmp_path, depth=2) == [tmp_path / "x" / "y"]


def test_an_a_b_pair_is_task_ab_whatever_the_letter_case(tmp_path):
    from litefuse.data.pairs import pair_task

    _img(tmp_path / "A" / "01.png")
    _img(tmp_path / "B" / "01.png")
    pair = find_pairs(tmp_path)[0][0]
    assert pair_task(pair) == "ab"
    _img(tmp_path / "ir2" / "ir" / "01.png")
    _img(tmp_path / "ir2" / "vi" / "01.png")
    assert pair_task(find_pairs(tmp_path / "ir2")[0][0]) == "ivif"
