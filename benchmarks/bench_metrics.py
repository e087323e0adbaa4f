"""Time the 8 core fusion metrics on one 640×480 triple and compare with reference-style code.

    python benchmarks/bench_metrics.py [--runs 7]

Uses MSRS 00001D (mean rule) from the validation pack in ../shared (or $LITEFUSE_SHARED) when
present, else a synthetic 640×480 triple. Baselines, each computing the same numbers:

* library calls where METRICS.md §5 lists an exact equivalent (the calls CDDFuse's evaluator
  makes): scikit-learn ``mutual_info_score`` for MI, scikit-image ``structural_similarity`` on
  float32 with data_range 2 for SSIM, ``shannon_entropy`` for EN (test-only dependencies);
* per-pixel pure-Python loops (the style of the MATLAB reference code, translated literally)
  for Qabf and the CDDFuse SSIM window, timed on a small crop and extrapolated linearly to
  640×480 — their results are checked against litefuse on that crop first.

Prints a markdown table with the machine description. Target: 8 core metrics ≤ 0.5 s.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import scipy

from litefuse.metrics import CORE_METRICS, evaluate, load_grey_u8
from litefuse.metrics import gradient, structural


def load_triple() -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], str]:
    shared = Path(os.environ.get("LITEFUSE_SHARED") or Path(__file__).resolve().parents[1].parent / "shared")
    pack = shared / "reference" / "metrics"
    files = [pack / "inputs" / "ir" / "MSRS_00001D.png", pack / "inputs" / "vi" / "MSRS_00001D.png",
             pack / "fused" / "mean" / "MSRS_00001D.png"]
    if all(p.is_file() for p in files):
        return tuple(load_grey_u8(p) for p in files), "MSRS 00001D, mean rule (validation pack)"
    from scipy import ndimage

    rng = np.random.default_rng(0)
    a, b = (ndimage.gaussian_filter(rng.normal(size=(480, 640)), s) for s in (2.0, 1.0))
    a, b = (np.round(255 * (x - x.min()) / (x.max() - x.min())).astype(np.uint8) for x in (a, b))
    return (a, b, ((a.astype(np.uint16) + b + 1) // 2).astype(np.uint8)), "synthetic 640×480 (pack not found)"


def median_time(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


# ------------------------------------------------------------- pure-Python per-pixel baselines

# litefuse's CDDFuse SSIM runs in float32, as the reference's scikit-image call does; the loop below
# is float64, so the two agree to float32 rounding, not to the last bit (Qabf is float64 in both)
QABF_TOL, SSIM_RTOL = 1e-9, 1e-4  # relative: see structural._ssim_cddfuse


def loop_qabf(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """Qabf with explicit per-pixel loops (conv2 'same' Sobel, the g_S == g_F quirk)."""
    h, w = a.shape
    imgs = [x.astype(float).tolist() for x in (a, b, f)]
    kx = [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]
    ky = [[1, 2, 1], [0, 0, 0], [-1, -2, -1]]

    def edges(img):
        g = [[0.0] * w for _ in range(h)]
        al = [[0.0] * w for _ in range(h)]
        for i in range(h):
            for j in range(w):
                sx = sy = 0.0
                for p in range(3):
                    for q in range(3):
                        ii, jj = i + 1 - p, j + 1 - q  # convolution: flipped kernel
                        if 0 <= ii < h and 0 <= jj < w:
                            sx += kx[p][q] * img[ii][jj]
                            sy += ky[p][q] * img[ii][jj]
                g[i][j] = math.sqrt(sx * sx + sy * sy)
                al[i][j] = math.pi / 2 if sx == 0 else math.atan(sy / sx)
        return g, al

    (ga, aa), (gb, ab), (gf, af) = (edges(x) for x in imgs)
    num = den = 0.0
    for i in range(h):
        for j in range(w):
            for gs, als in ((ga, aa), (gb, ab)):
                s, fv = gs[i][j], gf[i][j]
                gsf = fv / s if s > fv else (s / fv if s < fv else fv)
                asf = 1 - abs(als[i][j] - af[i][j]) / (math.pi / 2)
                q = 0.9994 / (1 + math.exp(-15 * (gsf - 0.5))) * 0.9879 / (1 + math.exp(-22 * (asf - 0.8)))
                num += q * s
                den += s
    return num / den


def loop_ssim_cddfuse(x: np.ndarray, y: np.ndarray) -> float:
    """CDDFuse SSIM of one pair with explicit 7×7 windows (reflect padding, sample covariance)."""
    h, w = x.shape
    xp = np.pad(x.astype(float), 3, mode="symmetric").tolist()
    yp = np.pad(y.astype(float), 3, mode="symmetric").tolist()
    c1, c2, n = 4e-4, 3.6e-3, 49
    total = 0.0
    for i in range(3, h - 3):
        for j in range(3, w - 3):
            sx = sy = sxx = syy = sxy = 0.0
            for p in range(i, i + 7):
                rx, ry = xp[p], yp[p]
                for q in range(j, j + 7):
                    u, v = rx[q], ry[q]
                    sx += u; sy += v; sxx += u * u; syy += v * v; sxy += u * v  # noqa: E702
            mx, my = sx / n, sy / n
            vx = (sxx / n - mx * mx) * n / (n - 1)
            vy = (syy / n - my * my) * n / (n - 1)
            vxy = (sxy / n - mx * my) * n / (n - 1)
            total += ((2 * mx * my + c1) * (2 * vxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return total / ((h - 6) * (w - 6))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs per measurement (median)")
    parser.add_argument("--crop", type=int, default=48, help="side of the crop for the pure-Python loops")
    args = parser.parse_args()

    (a, b, f), source = load_triple()
    h, w = f.shape
    evaluate(a, b, f, CORE_METRICS)  # warm-up (imports, caches)

    rows = []
    for m in CORE_METRICS:
        rows.append((m, median_time(lambda m=m: evaluate(a, b, f, [m]), args.runs)))
    total = median_time(lambda: evaluate(a, b, f, CORE_METRICS), args.runs)

    baselines: dict[str, tuple[float, str]] = {}
    try:
        from skimage.measure import shannon_entropy
        from skimage.metrics import structural_similarity
        from sklearn.metrics import mutual_info_score

        f32, a32, b32 = (x.astype(np.float32) for x in (f, a, b))
        baselines["EN"] = (median_time(lambda: shannon_entropy(f, base=2), args.runs), "skimage shannon_entropy")
        baselines["MI"] = (median_time(lambda: mutual_info_score(f.ravel(), a.ravel())
                                       + mutual_info_score(f.ravel(), b.ravel()), args.runs), "sklearn mutual_info_score ×2")
        baselines["SSIM"] = (median_time(lambda: structural_similarity(f32, a32, data_range=2.0)
                                         + structural_similarity(f32, b32, data_range=2.0), args.runs),
                             "skimage structural_similarity float32 ×2")
    except ImportError:
        pass

    c = args.crop
    ca, cb, cf = (x[h // 2 - c // 2: h // 2 + c // 2, w // 2 - c // 2: w // 2 + c // 2] for x in (a, b, f))
    scale = (h * w) / (c * c)
    t = time.perf_counter()
    q_loop = loop_qabf(ca, cb, cf)
    t_qabf = (time.perf_counter() - t) * scale
    assert abs(q_loop - gradient.qabf(*(x.astype(float) for x in (ca, cb, cf)))) < QABF_TOL
    t = time.perf_counter()
    s_loop = loop_ssim_cddfuse(cf, ca) + loop_ssim_cddfuse(cf, cb)
    t_ssim = (time.perf_counter() - t) * (h - 6) * (w - 6) / ((c - 6) * (c - 6))
    assert abs(s_loop - structural.ssim_fused(*(x.astype(float) for x in (ca, cb, cf)))) < SSIM_RTOL * abs(s_loop)
    loops = {"Qabf": (t_qabf, f"pure-Python loop, {c}×{c} crop ×{scale:.0f}"),
             "SSIM": (t_ssim, f"pure-Python 7×7 loop, {c}×{c} crop, extrapolated")}

    cpu = platform.processor() or platform.machine()
    print(f"Machine: {platform.platform()}, {cpu}, {os.cpu_count()} logical CPUs; Python {platform.python_version()}, "
          f"numpy {np.__version__}, scipy {scipy.__version__}")
    print(f"Image: {source}, {w}×{h}; median of {args.runs} runs\n")
    print("| metric | litefuse (ms) | baseline (ms) | baseline | speed-up |")
    print("|---|---:|---:|---|---:|")
    for m, t_m in rows:
        for base in (baselines.get(m), loops.get(m)):
            if base is None:
                continue
            print(f"| {m} | {1e3 * t_m:.1f} | {1e3 * base[0]:.1f} | {base[1]} | {base[0] / t_m:.1f}× |")
        if m not in baselines and m not in loops:
            print(f"| {m} | {1e3 * t_m:.1f} | | | |")
    verdict = "meets" if total <= 0.5 else "MISSES"
    print(f"| **8 core metrics** (one `evaluate` call) | **{1e3 * total:.0f}** | | target ≤ 500 ms: {verdict} | |")


if __name__ == "__main__":
    main()
