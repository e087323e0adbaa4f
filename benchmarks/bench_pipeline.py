"""End-to-end fusion speed: the Python API against the CLI, and folder fusion pipelined or not.

    python benchmarks/bench_pipeline.py [--data ../shared/data/ivif/MSRS] [--methods aenetv2-ivif,dwsfusion] [--pairs 12]

Three measurements per method on real colour pairs (MSRS: 640×480 colour visible + grey
infrared PNGs), each in a fresh process so settings do not leak between them:

- **API**: a plain Python program (nothing but ``import litefuse``) builds ``litefuse.Fuser``
  and fuses the pairs one at a time with ``fuse_images`` (decoded beforehand); median per pair.
- **CLI**: ``litefuse fuse --input DIR -o OUT`` on a folder of ``--pairs`` pairs and on one of
  1 pair; per pair = (T_n − T_1) / (n − 1), so start-up and model loading cancel out. This is
  decode + fuse + encode, pipelined (see ``litefuse.folder.fuse_folder``).
- **folder, serial**: the same folder in one process, as a loop of read → fuse → save per
  pair (how fuse_folder worked before it overlapped decoding and encoding with the network);
  **folder, pipelined**: ``litefuse.folder.fuse_folder`` on it. Both per pair, same process, by the
  CLI's difference (T_n − T_1) / (n − 1): a plain ``total / n`` charged the pipeline's fill and
  drain (the first decode, the last encode) to the API and read 1.16 for aenetv2-ivif.

Issue #20's targets: the API within 10 % of the CLI's per-pair time (compare "API folder", a
plain Python process calling ``fuse_folder``, with "CLI folder": the same work); the folder
pipelined faster than serial on a 2-core CPU. ``fuse_images`` has no decoding or encoding: the
network's share of a pair.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from litefuse.bench import load_average, machine_line  # the package's machine facts and interleaved timer

API_CHILD = r"""
import json, statistics, sys, time
from pathlib import Path
import litefuse
from litefuse.data import find_pairs
from litefuse.io import read_image
method, folder, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
pairs = find_pairs(folder)[0][:n]
images = [(read_image(p.a), read_image(p.b)) for p in pairs]
fuser = litefuse.Fuser(method)
fuser.fuse_images(*images[0])  # warm-up
times = []
for ir, vi in images:
    t = time.perf_counter(); fuser.fuse_images(ir, vi); times.append(time.perf_counter() - t)
print(json.dumps({"api": statistics.median(times)}))
"""

FOLDER_CHILD = r"""
import json, shutil, sys, tempfile, time
from pathlib import Path
from litefuse.api import Fuser
from litefuse.folder import fuse_folder
from litefuse.data import find_pairs
from litefuse.io import read_image, save_image
method, many, one = sys.argv[1], sys.argv[2], sys.argv[3]
fuser = Fuser(method)
first = find_pairs(many)[0][0]
fuser.fuse_images(read_image(first.a), read_image(first.b))  # warm-up

def seconds(kind, folder):
    pairs, dest = find_pairs(folder)[0], Path(tempfile.mkdtemp())
    t = time.perf_counter()
    if kind == "serial":
        for p in pairs:
            save_image(dest / f"{p.name}.png", fuser.fuse_images(read_image(p.a), read_image(p.b)))
    else:
        fuse_folder(folder, dest, fuser)
    dt = time.perf_counter() - t
    shutil.rmtree(dest)
    return dt, len(pairs)

out = {}
for rnd in range(2):  # interleaved: serial, pipelined, serial, pipelined
    for kind in ("serial", "pipelined"):
        (t_n, n), (t_1, _) = seconds(kind, many), seconds(kind, one)
        dt = (t_n - t_1) / (n - 1)  # as for the CLI: start-up and pipeline fill/drain cancel out
        out[kind] = min(out.get(kind, dt), dt)
print(json.dumps(out))
"""


def _subset(src: Path, n: int, dest: Path) -> Path:
    """A pair folder with the first ``n`` pairs of ``src`` (symlinks; inputs are not copied)."""
    from litefuse.data import find_pairs

    for sub in ("ir", "vi"):
        (dest / sub).mkdir(parents=True)
    for pair in find_pairs(src)[0][:n]:
        (dest / "ir" / pair.a.name).symlink_to(pair.a.resolve())
        (dest / "vi" / pair.b.name).symlink_to(pair.b.resolve())
    return dest


def _child(code: str, *args: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _cli_seconds(method: str, folder: Path) -> float:
    litefuse = Path(sys.executable).with_name("litefuse")
    out = Path(tempfile.mkdtemp())
    t = time.perf_counter()
    subprocess.run([str(litefuse), "fuse", "--input", str(folder), "-o", str(out / "o"), "-m", method],
                   capture_output=True, check=True)
    dt = time.perf_counter() - t
    shutil.rmtree(out)
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared/data/ivif/MSRS")
    ap.add_argument("--methods", default="aenetv2-ivif,aenetv2,lwc-densefuse,densefuse,dwsfusion,max")
    ap.add_argument("--pairs", type=int, default=12)
    args = ap.parse_args()
    if args.pairs < 2:  # per pair = (T_n - T_1) / (n - 1)
        ap.error(f"--pairs must be at least 2 (got {args.pairs}): the per-pair time is (T_n - T_1) / (n - 1)")

    import torch

    with tempfile.TemporaryDirectory() as tmp:
        many = _subset(args.data, args.pairs, Path(tmp) / "many")
        one = _subset(args.data, 1, Path(tmp) / "one")
        print(f"## End to end: API vs CLI, folder serial vs pipelined ({args.data.name}, {args.pairs} pairs)\n")
        print(machine_line())
        print(f"- torch {torch.__version__}, load average {load_average()}; ms per pair\n")
        print("| method | `Fuser.fuse_images` (no I/O) | CLI folder | API folder (pipelined) | API ÷ CLI | API folder, serial | serial ÷ pipelined |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for method in [m for m in args.methods.split(",") if m]:
            api = _child(API_CHILD, method, str(many), str(args.pairs))["api"]
            t_n = min(_cli_seconds(method, many) for _ in range(2))
            t_1 = min(_cli_seconds(method, one) for _ in range(2))
            cli = (t_n - t_1) / (args.pairs - 1)
            folder = _child(FOLDER_CHILD, method, str(many), str(one))
            print(f"| {method} | {api * 1e3:.1f} | {cli * 1e3:.1f} | {folder['pipelined'] * 1e3:.1f} "
                  f"| {folder['pipelined'] / cli:.2f} | {folder['serial'] * 1e3:.1f} "
                  f"| {folder['serial'] / folder['pipelined']:.2f} |", flush=True)


if __name__ == "__main__":
    from litefuse.errors import LitefuseError

    try:
        main()
    except LitefuseError as exc:  # ../shared's data not found, a weights file missing, ...: one line
        sys.exit(f"error: {exc}")
