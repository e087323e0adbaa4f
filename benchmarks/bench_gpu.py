"""Issue 20's GPU targets in one run, made to fit one short call on a lent GPU machine.

    python benchmarks/bench_gpu.py [--device cuda] [--size 640x480] [--rounds 50] [--pairs 64] [--out FILE]
    python benchmarks/bench_gpu.py --device cpu --quick      # checks the script itself on a CPU

Everything goes through :class:`litefuse.Fuser`, as a user would run it, with fixed frame sizes
(``cudnn.benchmark`` tunes once per size). Sections:

1. **precision** -- every network, batch 1, eager, at fp32 / fp16 / bf16: median ms, FPS and the
   max |difference| from fp32 on the same random pair (or the error a precision raised);
2. **compiled** -- ``Fuser(compile=True)`` (inductor; CUDA graphs via ``reduce-overhead`` on
   CUDA) for the AE-Netv2 networks and ``dwsfusion`` at batch 1, and fp16 batch 16 in images/s;
3. **DenseFuse family** -- ``lwc-densefuse`` against ``densefuse`` (issue 21's GPU target),
   inference and training forms and compiled, batch 1 and 8;
4. **dwsfusion sampling** -- the deformable sampler ``grid`` (one gather, the GPU default) and
   ``shift`` (the CPU default) on the same device;
5. **folder** -- ``fuse_folder`` over ``--pairs`` generated 640x480 colour PNG pairs (decode,
   colour, network, encode, atomic writes): pairs/s with colour conversion on the device and on
   the host, batch 1 and ``--batch-size``.

The eager sections (1, 3, 4, 5) run first and the compiled ones (2, then 3's compiled rows) last;
a compiled cell not begun ``--budget`` seconds (default 300) after the start is skipped and
said, so one short call on a lent GPU ends in time. Each section is written to ``--out`` as it
ends, and a section that fails is reported under the rows it finished, then the next one runs.

Targets (issue 20): aenetv2 >= 2,000 FPS compiled at batch 1; every network runs in fp16 and
bf16; dwsfusion >= 150 FPS; folder >= 100 pairs/s on a 16-core GPU machine; issue 21:
lwc-densefuse no slower than densefuse at batch 1.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

from litefuse._checks import WxH, parse_wxh
from litefuse._files import atomic_write_text
from litefuse.bench import (  # the package's machine facts and interleaved timer
    load_average,
    machine_line,
)

PRECISIONS = ("fp32", "fp16", "bf16")
COMPILED = ("aenetv2", "aenetv2-ivif", "dwsfusion")


def _timer(device: str):
    import torch

    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def median_ms(call, rounds: int, warmup: int) -> float:
        for _ in range(warmup):
            call()
        sync()
        times = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            call()
            sync()
            times.append(time.perf_counter() - t0)
        return 1e3 * statistics.median(times)

    return median_ms


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"fails: {type(exc).__name__}: {text[:90]}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--size", type=WxH, default="640x480", help="W x H")
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--pairs", type=int, default=64, help="generated colour pairs for the folder section")
    ap.add_argument("--batch-size", type=int, default=8, help="folder batch size (besides 1)")
    ap.add_argument("--big-batch", type=int, default=16, help="fp16 batch of the compiled section")
    ap.add_argument("--no-compile", action="store_true", help="skip the compiled section")
    ap.add_argument("--networks", default=None, help="comma-separated networks of the precision table (default: all)")
    ap.add_argument("--budget", type=float, default=300.0,
                    help="seconds since the start after which compiled cells not yet begun are skipped (0: no limit)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes and counts: a check of the script")
    ap.add_argument("--out", type=Path, default=None, help="also write the markdown here (after every section)")
    args = ap.parse_args(argv)
    if args.quick:
        args.size, args.rounds, args.warmup, args.pairs, args.batch_size, args.big_batch = "96x64", 3, 1, 6, 3, 4
    started = time.perf_counter()

    import numpy as np
    import torch
    from PIL import Image

    import litefuse
    from litefuse.api import Fuser
    from litefuse.demo import synthetic_pair
    from litefuse.folder import fuse_folder
    from litefuse.io import save_image
    from litefuse.runtime import keep_full_isa

    torch.backends.cudnn.benchmark = True
    w, h = parse_wxh(args.size)
    dev = args.device
    cuda = dev.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        print(f"error: --device {dev} needs CUDA, which this torch ({torch.__version__}) does not see; "
              "--device cpu --quick checks the script on a CPU", file=sys.stderr)
        return 2
    if not cuda:  # the CPU check mixes precisions in one process
        keep_full_isa()
    median_ms = _timer(dev)
    torch.manual_seed(0)
    ir, vi = torch.rand(1, 1, h, w, device=dev), torch.rand(1, 1, h, w, device=dev)
    networks = args.networks.split(",") if args.networks else [m.name for m in litefuse.list_models("network")]
    out: list[str] = [f"## GPU inference (issue 20): {w}×{h}, `python benchmarks/bench_gpu.py --device {dev}`", ""]
    out.append(machine_line())
    gpu = torch.cuda.get_device_name(0) if cuda and torch.cuda.is_available() else "none"
    out += [f"- device: {dev} ({gpu}); torch {torch.__version__}; load average {load_average()}", ""]

    def save() -> None:  # after every section: a later failure, hang or kill keeps what ran
        if args.out:
            atomic_write_text(args.out, "\n".join(out) + "\n")  # a kill mid-write keeps the previous section's file

    def emit(lines: list[str]) -> None:
        out.extend(lines)
        print("\n".join(lines), flush=True)
        save()

    def elapsed() -> float:
        return time.perf_counter() - started

    def budget_left() -> bool:
        return not args.budget or elapsed() < args.budget

    def section(fn) -> None:
        """Run one section; it fills ``rows`` (its table so far). A failure is reported under the
        rows it finished, and the next section runs."""
        rows: list[str] = []
        t0 = time.perf_counter()
        try:
            fn(rows)
            tail = []
        except Exception as exc:  # noqa: BLE001 - one failing section must not lose the others
            frames = traceback.extract_tb(exc.__traceback__)[-3:]
            where = "; ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in frames)
            tail = ["", f"**Section failed**: {_short(exc)} (at {where})"]
        if cuda:
            try:
                torch.cuda.synchronize()
            except Exception as exc:  # noqa: BLE001 - a broken CUDA context: said, and the rows kept
                tail += ["", f"**CUDA synchronize failed**: {_short(exc)}"]
        emit(rows + tail + ["", f"_({time.perf_counter() - t0:.1f} s; {elapsed():.0f} s since the start)_", ""])

    print("\n".join(out), flush=True)
    save()

    # 1. precision ---------------------------------------------------------------------------
    def precision_table(rows: list[str]) -> None:
        rows += ["### Every network at fp32 / fp16 / bf16, batch 1, eager", "",
                 "| network | " + " | ".join(f"{p} ms (FPS)" for p in PRECISIONS) + " | max abs diff fp16, bf16 vs fp32 |",
                 "|---|" + "---:|" * len(PRECISIONS) + "---|"]
        for name in networks:
            cells, ref, diffs = [], None, []
            for precision in PRECISIONS:
                try:
                    fuser = Fuser(name, device=dev, precision=precision)
                    with torch.inference_mode():
                        y = fuser.model(ir, vi)
                        ms = median_ms(lambda f=fuser: f.model(ir, vi), args.rounds, args.warmup)
                    if precision == "fp32":
                        ref = y
                    elif ref is not None:
                        diffs.append(f"{(y.float() - ref).abs().max().item():.1e}")
                    else:
                        diffs.append("-")
                    cells.append(f"{ms:.2f} ({1e3 / ms:,.0f})")
                except Exception as exc:  # noqa: BLE001 - the table reports what failed
                    cells.append(_short(exc))
                    if precision != "fp32":
                        diffs.append("-")
            rows.append(f"| {name} | " + " | ".join(cells) + f" | {', '.join(diffs)} |")

    # 3. the DenseFuse family (issue 21: lwc-densefuse no slower than densefuse at batch 1) ------
    ir8, vi8 = ir.expand(8, -1, -1, -1).contiguous(), vi.expand(8, -1, -1, -1).contiguous()

    def densefuse_family(rows: list[str]) -> None:
        rows += ["### lwc-densefuse vs densefuse, fp32, eager (issue 21)", "",
                 "| network | form | batch 1 ms | batch 8 ms per image |", "|---|---|---:|---:|"]
        for name in ("densefuse", "lwc-densefuse"):
            fuser = Fuser(name, device=dev)
            for form in ("inference", "training"):
                fuser.model.fuse_for_inference(form == "inference")
                with torch.inference_mode():
                    one = median_ms(lambda f=fuser: f.model(ir, vi), args.rounds, args.warmup)
                    eight = median_ms(lambda f=fuser: f.model(ir8, vi8), max(3, args.rounds // 5), 2) / 8
                rows.append(f"| {name} | {form} | {one:.2f} | {eight:.2f} |")

    # 4. dwsfusion sampling ------------------------------------------------------------------
    def dwsfusion_sampling(rows: list[str]) -> None:
        rows += ["### dwsfusion deformable sampling, batch 1, fp32 eager", "", "| sampler | ms (FPS) | max abs diff vs shift |", "|---|---:|---:|"]
        fuser = Fuser("dwsfusion", device=dev)
        ref = None
        for sampler in ("shift", "grid"):
            fuser.model.set_sampler(sampler)
            with torch.inference_mode():
                y = fuser.model(ir, vi)
                ms = median_ms(lambda: fuser.model(ir, vi), args.rounds, args.warmup)
            ref = y if ref is None else ref
            rows.append(f"| {sampler} | {ms:.2f} ({1e3 / ms:,.0f}) | {(y - ref).abs().max().item():.1e} |")

    # 5. folder ------------------------------------------------------------------------------
    def folder(rows: list[str]) -> None:
        rows += [f"### Folder fusion, {args.pairs} generated {w}×{h} colour PNG pairs, aenetv2-ivif", "",
                 "| colour conversion | batch | pairs/s | s total |", "|---|---:|---:|---:|"]
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "set"
            for i in range(args.pairs):
                a, b = synthetic_pair(h, w, seed=i)
                save_image(root / "ir" / f"{i:04d}.png", a)
                save_image(root / "vi" / f"{i:04d}.png", b)
            for on_device in (True, False):
                fuser = Fuser("aenetv2-ivif", device=dev, colour_on_device=on_device)
                fuse_folder(root, Path(tmp) / "warm", fuser, batch_size=args.batch_size, overwrite=True)  # tune sizes
                for batch in (1, args.batch_size):
                    dest = Path(tmp) / f"out-{on_device}-{batch}"
                    t0 = time.perf_counter()
                    report = fuse_folder(root, dest, fuser, batch_size=batch)
                    took = time.perf_counter() - t0
                    if len(report.fused) != args.pairs:
                        raise RuntimeError(report.summary)
                    where = "device" if on_device else "host (numpy, worker threads)"
                    rows.append(f"| {where} | {batch} | {args.pairs / took:,.1f} | {took:.2f} |")
            first = np.asarray(Image.open(Path(tmp) / f"out-True-{args.batch_size}" / "0000.png"), np.int16)
            other = np.asarray(Image.open(Path(tmp) / "out-False-1" / "0000.png"), np.int16)
            rows += ["", f"Device and host colour paths differ by at most {np.abs(first - other).max()} grey level(s) in pair 0000."]

    # 2. compiled ----------------------------------------------------------------------------
    def skipped() -> str:
        return f"skipped: past the --budget of {args.budget:.0f} s"

    def compiled_table(rows: list[str]) -> None:
        rows += ["### Compiled (`Fuser(compile=True)`), batch 1, and fp16 batch " + str(args.big_batch), "",
                 "| network | eager fp32 ms | compiled fp32 ms (FPS) | compiled fp16 ms (FPS) | "
                 f"compiled fp16 batch {args.big_batch}: images/s | first call (compile) s |", "|---|---:|---:|---:|---:|---:|"]
        big_ir, big_vi = ir.expand(args.big_batch, -1, -1, -1).contiguous(), vi.expand(args.big_batch, -1, -1, -1).contiguous()
        for name in COMPILED[:1] if args.quick else COMPILED:  # dwsfusion compiles for minutes on a small CPU
            if not budget_left():
                rows.append(f"| {name} | {skipped()} | | | | |")
                continue
            cells = []
            try:
                with torch.inference_mode():
                    eager = Fuser(name, device=dev)
                    e_ms = median_ms(lambda f=eager: f.model(ir, vi), args.rounds, args.warmup)
                    cells.append(f"{e_ms:.2f}")
                    c32 = Fuser(name, device=dev, compile=True)
                    t0 = time.perf_counter()
                    c32.model(ir, vi)
                    first = time.perf_counter() - t0
                    c_ms = median_ms(lambda f=c32: f.model(ir, vi), args.rounds, args.warmup)
                    cells.append(f"{c_ms:.2f} ({1e3 / c_ms:,.0f})")
                    if not budget_left():
                        raise TimeoutError(skipped())
                    c16 = Fuser(name, device=dev, compile=True, precision="fp16")
                    h_ms = median_ms(lambda f=c16: f.model(ir, vi), args.rounds, args.warmup)
                    cells.append(f"{h_ms:.2f} ({1e3 / h_ms:,.0f})")
                    if not budget_left():
                        raise TimeoutError(skipped())
                    b_ms = median_ms(lambda f=c16: f.model(big_ir, big_vi), max(3, args.rounds // 5), 2)
                    cells.append(f"{args.big_batch * 1e3 / b_ms:,.0f}")
                rows.append(f"| {name} | " + " | ".join(cells) + f" | {first:.1f} |")
            except Exception as exc:  # noqa: BLE001
                msg = str(exc) if isinstance(exc, TimeoutError) else _short(exc)
                rows.append(f"| {name} | " + " | ".join(cells + [msg] + [""] * (4 - len(cells))) + " |")

    def densefuse_compiled(rows: list[str]) -> None:  # inductor fuses the gate / border passes; CUDA graphs remove launches
        rows += ["### lwc-densefuse vs densefuse, fp32, compiled (issue 21)", "",
                 "| network | form | batch 1 ms | batch 8 ms per image |", "|---|---|---:|---:|"]
        for name in ("densefuse", "lwc-densefuse"):
            if not budget_left():
                rows.append(f"| {name} | compiled | {skipped()} | |")
                continue
            try:
                compiled = Fuser(name, device=dev, compile=True)
                with torch.inference_mode():
                    one = median_ms(lambda f=compiled: f.model(ir, vi), args.rounds, args.warmup)
                    eight = median_ms(lambda f=compiled: f.model(ir8, vi8), max(3, args.rounds // 5), 2) / 8
                rows.append(f"| {name} | compiled | {one:.2f} | {eight:.2f} |")
            except Exception as exc:  # noqa: BLE001 - the table reports what failed
                rows.append(f"| {name} | compiled | {_short(exc)} | |")

    # the eager sections first (seconds on a GPU), the compiled ones last, within --budget
    for fn in (precision_table, densefuse_family, dwsfusion_sampling, folder):
        section(fn)
    if not args.no_compile:
        section(compiled_table)
        section(densefuse_compiled)
    line = f"Total {elapsed():.0f} s"
    if cuda:
        try:
            line += f"; peak GPU memory allocated {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB"
        except Exception:  # noqa: BLE001 - a broken CUDA context: the total still written
            pass
    emit([line + ".", ""])
    return 0


if __name__ == "__main__":
    sys.exit(main())
