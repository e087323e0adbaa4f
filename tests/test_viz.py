import numpy as np

from litefuse.viz import image_grid


def _grey(h: int, w: int) -> np.ndarray:
    return np.full((h, w), 0.2, np.float32)


def _image_box(grid: np.ndarray) -> tuple[int, int]:
    """(top row, left column) of the first image: the first pixel at the images' grey level."""
    image = grid[..., 0] == 51
    top = int(np.argmax(image.sum(axis=1) >= 64))  # text is never 64 pixels of one grey in a row
    return top, int(np.argmax(image[top]))


def test_grid_caption_wraps_inside_its_column_and_row_labels_are_not_covered():
    long = "my-finetuned-aenetv2-run-2024-lr1e-4-with-a-long-label"
    grid = image_grid([[_grey(40, 64), _grey(40, 64)]], col_labels=[long, ""], row_labels=["RoadScene/FLIR_00018"],
                      height=40, gap=6)
    top, left = _image_box(grid)
    text = grid.min(axis=2) < 128
    col2 = left + 64 + 6  # the second column has no caption: its caption band stays blank
    assert not text[:top, col2 - 2:].any(), "a long caption ran into the next column"
    assert text[:top, left:col2].any() and top > 2 * 14, "the caption wraps onto more lines"
    assert text[:, :left - 2].any() and left > 90, "the row-label margin fits the label"


def test_grid_none_cell_is_blank_and_keeps_later_columns_in_place():
    with_gap = image_grid([[_grey(20, 64), None, _grey(20, 64)]], height=20, gap=4)
    full = image_grid([[_grey(20, 64), _grey(20, 64), _grey(20, 64)]], height=20, gap=4)
    assert with_gap.shape == full.shape
    filled = with_gap.min(axis=2) < 128
    assert filled[10, 4:68].all() and not filled[:, 72:136].any() and filled[10, 140:204].all()


def _chart_axes(scores: dict, monkeypatch) -> tuple:
    """metric_chart's figure as it would be saved: (plot heights in inches, bar colours, suptitle)."""
    import litefuse.viz

    seen = {}

    def keep(fig, path):
        import matplotlib.pyplot as plt

        fig.tight_layout()
        fig.canvas.draw()
        axes = [ax for ax in fig.axes if ax.axison]
        seen.update(heights=[ax.get_window_extent().height / fig.dpi for ax in axes],
                    colours=[tuple(p.get_facecolor()) for p in axes[0].patches], title=fig.get_suptitle())
        plt.close(fig)  # as save_figure does: no figure is left open for the next test
        return path

    monkeypatch.setattr(litefuse.viz, "save_figure", keep)
    litefuse.viz.metric_chart(scores, "unused.png", directions={"EN": "↑", "CE": "↓"})
    return seen["heights"], seen["colours"], seen["title"]


def test_metric_chart_keeps_room_for_bars_with_many_long_names_and_says_what_arrows_mean(monkeypatch):
    short, _, _ = _chart_axes({f"m{i}": {"EN": 6.0 + i, "CE": 1.0} for i in range(3)}, monkeypatch)
    heights, colours, title = _chart_axes({f"method-with-a-long-name-{i}": {"EN": 6.0 + i, "CE": 1.0} for i in range(12)},
                                          monkeypatch)
    assert min(heights) >= 0.8 * min(short), "long method names squash the bars"
    assert len(set(colours)) == 12, "every method has its own colour"
    assert "higher is better" in title and "lower is better" in title


def test_charts_without_matplotlib_name_the_plot_extra(monkeypatch, tmp_path):
    """Without the [plot] extra the chart functions (and BenchReport.chart, the card's loss
    curve) raised a bare ``No module named 'matplotlib'``, naming no extra; video and ONNX
    export name theirs."""
    import sys

    import pytest

    import litefuse.viz
    from litefuse.errors import LitefuseError
    from litefuse.train.card import loss_curve

    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # importing it fails, as where it is not installed
    (tmp_path / "log.csv").write_text("kind,step,loss\ntrain,1,0.5\n")
    calls = [lambda: litefuse.viz.metric_chart({"max": {"EN": 6.0}}, tmp_path / "m.png"),
             lambda: litefuse.viz.speed_chart([{"label": "max", "ms": 1.0, "kind": "classical"}], tmp_path / "s.png"),
             lambda: litefuse.viz.speed_quality_chart([], tmp_path / "q.png"),
             lambda: loss_curve(tmp_path, tmp_path / "l.png")]
    for call in calls:
        with pytest.raises(LitefuseError, match=r"pip install 'litefuse\[plot\]'"):
            call()
    assert not list(tmp_path.glob("*.png"))


def test_readme_says_what_each_extra_enables():
    """The README's Dependencies named no `[test]` extra, and gave `[plot]` the grids, which
    compare writes with Pillow alone."""
    import re
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    extras = tomllib.loads((root / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    section = (root / "README.md").read_text().split("## Dependencies", 1)[1].split("\n## ", 1)[0]
    section = " ".join(section.split())  # as rendered: line breaks are spaces
    for extra in extras:
        assert f"`[{extra}]` (" in section, f"the README does not say what [{extra}] enables"
    plot = re.search(r"`\[plot\]` \(([^)]*)\)", section).group(1)
    for command in ("compare", "bench --chart", "card", "study"):
        assert command in plot, command
    assert "grids and side-by-side images need only Pillow" in plot


def test_grid_of_very_wide_images_stays_a_sensible_width_and_keeps_their_aspect():
    """From a visuals QA pass: 2400×150 strips drew a 5-column compare grid 16,114 px wide
    (each cell 3,200 px at 200 rows); now each cell fits a box ``MAX_ASPECT`` rows wide."""
    from litefuse.viz import MAX_ASPECT, thumbnail

    wide, tall = _grey(150, 2400), _grey(720, 240)
    grid = image_grid([[wide] * 5, [tall] * 5], height=200, gap=6)
    assert grid.shape[1] <= 5 * (MAX_ASPECT * 200 + 6) + 6, grid.shape
    image = grid[..., 0] == 51
    rows = np.flatnonzero(image[:, 10])  # the first column: the strip, then the portrait image
    strip = rows[rows < 206 + 6]
    assert abs(MAX_ASPECT * 200 / (strip.max() - strip.min() + 1) - 16) < 0.5, "the strip keeps its 16:1 aspect"
    assert strip.min() > 6 + 50, "the strip is centred in its row"
    assert thumbnail(wide, 200).shape == (50, 800)  # what compare keeps is the cell it draws


def test_metric_chart_names_methods_once_per_row_unclipped_and_marks_best_and_reference(monkeypatch):
    """From a visuals QA pass: vertical bars repeated every (rotated) method name under each of
    the 8 panels, a long name ran off the figure's left edge, and neither the best value nor
    the `max` reference stood out (only colour told bars apart)."""
    import litefuse.viz

    long = "my-finetuned-aenetv2-run-2024-lr1e-4-with-a-long-label"
    scores = {"aenetv2": {"EN": 6.9, "CE": 1.2, "SD": 40.0, "MI": 1.6, "VIF": 0.5},
              long: {"EN": 7.0, "CE": 1.1, "SD": 41.0, "MI": 1.7, "VIF": 0.6},
              "max": {"EN": 6.7, "CE": 0.9, "SD": 47.0, "MI": 4.7, "VIF": 0.9}}
    seen = {}

    def keep(fig, path):
        import matplotlib.pyplot as plt

        fig.tight_layout()
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        labels = [t for ax in fig.axes for t in ax.get_yticklabels() if t.get_visible() and t.get_text()]
        seen.update(labels=[t.get_text() for t in labels],
                    left=min(t.get_window_extent(renderer).x0 for t in labels),
                    bars={ax.get_title(): [(p.get_linewidth(), p.get_hatch()) for p in ax.patches] for ax in fig.axes if ax.axison})
        plt.close(fig)
        return path

    monkeypatch.setattr(litefuse.viz, "save_figure", keep)
    litefuse.viz.metric_chart(scores, "unused.png", directions={"EN": "↑", "CE": "↓", "SD": "↑", "MI": "↑", "VIF": "↑"})
    assert len(seen["labels"]) == 2 * 3, "each row of panels names the 3 methods once"
    assert seen["left"] >= 0, "a method name runs off the figure"
    assert any("\n" in t for t in seen["labels"]), "the long name wraps"
    en, ce = seen["bars"]["EN ↑"], seen["bars"]["CE ↓"]
    assert en[1][0] > en[0][0] and ce[2][0] > ce[0][0], "the best bar (by the metric's direction) is outlined"
    assert all(bars[2][1] and not bars[0][1] for bars in seen["bars"].values()), "`max` is hatched in every panel"


def test_speed_chart_is_a_dot_plot_whose_legend_covers_no_point_or_value(monkeypatch):
    """From visuals QA passes: the legend sat inside the axes at the lower right, over the
    slowest bar (drawn at the bottom) and its value label; bars on the log axis misstated ratios."""
    import litefuse.viz

    seen = {}

    def keep(fig, path):
        import matplotlib.pyplot as plt

        fig.tight_layout()
        fig.canvas.draw()
        r = fig.canvas.get_renderer()
        ax = fig.axes[0]
        from matplotlib.transforms import Bbox

        dots = [Bbox.from_bounds(x - 5, y - 5, 10, 10) for c in ax.collections for x, y in ax.transData.transform(c.get_offsets())]
        seen.update(legend=ax.get_legend().get_window_extent(r), fig=fig.bbox, bars=len(ax.patches),
                    values=[t.get_text() for t in ax.texts if "FPS" not in t.get_text()],
                    drawn=dots + [t.get_window_extent(r) for t in ax.texts])
        plt.close(fig)
        return path

    monkeypatch.setattr(litefuse.viz, "save_figure", keep)
    points = [{"label": n, "ms": ms, "kind": k} for n, ms, k in
              [("max", 0.08, "classical"), ("aenetv2", 6.9, "network"), ("gff", 31.0, "classical"), ("densefuse", 141.0, "network")]]
    litefuse.viz.speed_chart(points, "unused.png")
    legend = seen["legend"]
    assert not any(legend.overlaps(box) for box in seen["drawn"]), "the legend covers a bar or a value"
    assert seen["fig"].contains(legend.x1 - 1, legend.y1 - 1), "the legend is inside the picture"
    # dots, not bars: on a log axis a bar's length starts at an arbitrary edge (max's 0.08 ms read 1/6 of densefuse's 141)
    assert seen["bars"] == 0 and len(seen["drawn"]) >= 2 * len(points)
    litefuse.viz.speed_chart([{"label": "slow", "ms": 3000.0, "kind": "network"}], "unused.png")
    assert seen["values"][0] == "3,000"  # not 3e+03


def test_loss_curve_labels_its_log_axis_in_plain_numbers(monkeypatch, tmp_path):
    """From a visuals QA pass: a loss between 0.4 and 2 (less than a decade) had two y labels,
    ``10^0`` and ``6×10^-1`` in mathtext; the study's latency axis read ``6×10^0``, ``2×10^1``."""
    import litefuse.viz
    from litefuse.train.card import loss_curve

    seen = {}

    def keep(fig, path):
        import matplotlib.pyplot as plt

        fig.canvas.draw()
        ax = fig.axes[0]
        low, high = ax.get_ylim()
        seen.update(label=ax.get_ylabel(), ticks=[t.get_text() for t in ax.get_yticklabels(minor=True) + ax.get_yticklabels()
                                                  if t.get_text() and low <= t.get_position()[1] <= high])
        plt.close(fig)
        return path

    monkeypatch.setattr(litefuse.viz, "save_figure", keep)
    losses = [1.6, 1.2, 0.9, 0.7, 0.5, 0.45]
    (tmp_path / "log.csv").write_text("kind,step,loss\n" + "".join(f"train,{i + 1},{v}\n" for i, v in enumerate(losses)))
    loss_curve(tmp_path, tmp_path / "l.png")
    assert len(seen["ticks"]) >= 2 and not any("$" in t or "10^" in t for t in seen["ticks"]), seen["ticks"]
    assert {float(t) for t in seen["ticks"]} >= {0.5, 1}
    assert "log" in seen["label"]


def test_grid_captions_scale_with_the_cells():
    """Captions are about 1/18 of a cell's height (10 to 24 px): legible in a 3000-px grid of tall cells."""
    import numpy as np

    from litefuse.viz import image_grid

    def ink_rows(height):
        grid = image_grid([[np.full((height, height), 0.5, np.float32)]], col_labels=["infrared"], height=height)
        dark = (grid[..., 0] < 100).any(axis=1)  # caption text (the grey cell is 128)
        first_cell_row = int(np.argmax((np.abs(grid[..., 0].astype(int) - 128) <= 1).sum(axis=1) > height // 2))
        return int(dark[:first_cell_row].sum())

    small, large = ink_rows(120), ink_rows(432)
    assert 5 <= small <= 14 and large >= 1.6 * small, (small, large)


def test_metric_chart_of_one_method_and_one_metric_has_room_for_its_title(tmp_path):
    """One bar: the figure was 1.15 in tall and the two-line title ran into the panel (matplotlib
    gave up its tight layout, with a warning)."""
    import warnings

    from litefuse.io import read_image
    from litefuse.viz import metric_chart

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        path = metric_chart({"mean": {"EN": 5.77}}, tmp_path / "c.png", title="TNO — mean over 1 pair",
                            directions={"EN": "↑"})
    h, w = read_image(path).shape[:2]
    assert h >= 200 and w >= 400


def test_metric_chart_values_tell_the_best_from_the_runner_up(monkeypatch):
    # with 3 significant digits the outlined best and the runner-up both read "6.6" (6.6048 vs 6.5973)
    import litefuse.viz

    seen = {}

    def keep(fig, path):
        import matplotlib.pyplot as plt

        seen["values"] = [t.get_text() for ax in fig.axes for t in ax.texts]
        plt.close(fig)
        return path

    monkeypatch.setattr(litefuse.viz, "save_figure", keep)
    litefuse.viz.metric_chart({"aenetv2-ivif": {"EN": 6.5973}, "dwsfusion": {"EN": 6.6048}}, "unused.png", directions={"EN": "↑"})
    assert seen["values"] == ["6.597", "6.605"]


def test_metric_panels_say_the_scale_a_reader_could_misread(monkeypatch):
    """A summed SSIM of 1.47 reads like a bug on a chart, and MI's unit depends on the code that
    defines it: the panels of those metrics say their scale under the convention scored."""
    import litefuse.viz
    from litefuse.metrics.conventions import scale_notes

    assert scale_notes("cddfuse") == {"MI": "nats", "SSIM": "SSIM(F,A) + SSIM(F,B), up to 2"}
    assert scale_notes("tang") == {"MI": "bits"} and scale_notes("cddfuse+psnr=textbook") == scale_notes("cddfuse")
    titles = {}

    def keep(fig, path):
        import matplotlib.pyplot as plt

        titles.update({ax.get_title(): ax for ax in fig.axes if ax.axison})
        plt.close(fig)
        return path

    monkeypatch.setattr(litefuse.viz, "save_figure", keep)
    scores = {"aenetv2": {"EN": 6.9, "MI": 1.8, "SSIM": 1.47}, "max": {"EN": 6.8, "MI": 4.8, "SSIM": 1.0}}
    litefuse.viz.metric_chart(scores, "unused.png", directions={"EN": "↑", "MI": "↑", "SSIM": "↑"}, notes=scale_notes())
    assert set(titles) == {"EN ↑", "MI ↑\nnats", "SSIM ↑\nSSIM(F,A) + SSIM(F,B), up to 2"}


def test_metric_chart_by_set_heads_each_set_and_outlines_the_best_within_it(monkeypatch):
    """One group of bars per set: the set named in bold above its methods, a method in one
    colour in every group, and the best bar outlined per set (not once over all sets)."""
    import litefuse.viz

    per_set = {"MSRS": {"a": {"EN": 6.0}, "max": {"EN": 5.0}}, "TNO": {"a": {"EN": 4.0}, "max": {"EN": 7.0}}}
    seen = {}

    def keep(fig, path):
        import matplotlib.pyplot as plt

        fig.canvas.draw()
        ax = fig.axes[0]
        seen.update(labels=[(t.get_text(), t.get_fontweight()) for t in ax.get_yticklabels()],
                    bars=[(p.get_y() + p.get_height() / 2, p.get_linewidth(), tuple(p.get_facecolor())) for p in ax.patches],
                    title=fig.get_suptitle())
        plt.close(fig)
        return path

    monkeypatch.setattr(litefuse.viz, "save_figure", keep)
    litefuse.viz.metric_chart_by_set(per_set, "unused.png", directions={"EN": "↑"})
    assert seen["labels"] == [("MSRS", "bold"), ("a", "normal"), ("max", "normal"), ("TNO", "bold"), ("a", "normal"), ("max", "normal")]
    (_, a1, c_a1), (_, m1, c_m1), (_, a2, c_a2), (_, m2, _) = sorted(seen["bars"])
    assert a1 > m1 and m2 > a2, "the best bar of each set is outlined"
    assert c_a1 == c_a2 != c_m1, "a method keeps its colour across sets"
    assert "best per set" in seen["title"]


def test_a_small_image_is_enlarged_in_pixel_blocks_not_smoothed():
    """30×30 results were enlarged with Lanczos in grid.png: a reader saw blur the method never made."""
    from litefuse.viz import _fit

    checker = (np.indices((30, 30)).sum(0) % 2).astype(np.float32)  # one-pixel checkerboard
    big = np.asarray(_fit(checker, 120))[..., 0]
    assert big.shape == (120, 120) and set(np.unique(big)) == {0, 255}  # only the two grey levels there were
    small = np.asarray(_fit(np.zeros((400, 400), np.float32), 120))  # scaled down: still filtered
    assert small.shape[:2] == (120, 120)
