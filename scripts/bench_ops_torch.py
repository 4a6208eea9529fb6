#!/usr/bin/python3
"""bench_ops_torch.py — times `focusbench bench-ops`' layer table in PyTorch on the CPU.

The side-by-side half of `focusbench bench-ops`: the same layer shapes (read from
`focusbench bench-ops --list-layers`, the one source of the table), the same batch and thread
count, the same protocol (inputs allocated before timing, warm-up runs, then timed runs until
both --repeats runs and --min-time seconds; median, IQR = p75 - p25 with linear interpolation,
min) and the same columns, GFLOP/s = 2 x MACs / median (conv/linear MACs, bias not counted),
and % of the FMA peak that focusbench measures on the same thread count.

Forward passes run under torch.no_grad(); --backward times y.backward(ones) after an untimed
forward (dx, dw, db), counted as 2 x the forward MACs, as bench-ops does.

    /usr/bin/python3 scripts/bench_ops_torch.py --batch 16 --threads 2
    build/focusbench bench-ops --batch 16 --threads 2 --csv /tmp/fb.csv
    /usr/bin/python3 scripts/bench_ops_torch.py --batch 16 --threads 2 --compare /tmp/fb.csv

--csv writes focusbench's result-CSV schema (bench/csv_out.h, schema_version 1) with exactly
bench-ops' columns (latency_ms_median, latency_ms_iqr, gflops_per_s = 2 x macs / median, ...,
then the environment), so either file can be read by --compare, `focusbench report` or
`focusbench regress` (its path column, "pytorch-<version>", keeps torch rows apart from
focusbench's "fast"/"reference" ones).

PyTorch comes from Debian (python3-torch 1.13): `scripts/install-deps.sh --torch`; run the
script with Debian's /usr/bin/python3, which sees /usr/lib/python3/dist-packages.

Like focusbench (bench/blas_select.c), on an AVX-512 CPU for which OpenBLAS 0.3.21 picks its
AVX2 kernels (AMD Zen 4/5), OPENBLAS_CORETYPE=SkylakeX is set before torch loads OpenBLAS, so
both sides run the same BLAS kernels (FOCUSBENCH_KEEP_OPENBLAS_CORETYPE=1 keeps the environment's
choice). PyTorch's convolutions run in oneDNN, its linear layers in BLAS.
"""
import argparse
import csv
import math
import os
import re
import shlex
import subprocess
import sys
import time

SCHEMA_VERSION = 1  # bench/csv_out.h CSV_SCHEMA_VERSION

# bench-ops' own columns (bench/cmd_bench_ops.c CSV_COLUMNS), in its order. gflops_per_s is
# 2 x macs / latency_ms_median (1 MAC = 2 FLOP; conv/linear MACs, bias not counted).
CSV_COLUMNS = ["layer", "net", "group", "kind", "shape", "batch", "cin", "cout", "h", "w", "ksize", "stride", "pad",
               "groups", "rows", "macs", "pass", "path", "threads", "runs", "latency_ms_median", "latency_ms_p25",
               "latency_ms_p75", "latency_ms_iqr", "latency_ms_min", "gflops_per_s", "peak_gflops_per_s",
               "pct_of_peak", "peak_start_gflops_per_s", "peak_end_gflops_per_s", "peak_isa"]
# The environment columns the writer appends (bench/csv_out.c CSV_ENV_COLUMNS), in its order.
CSV_ENV_COLUMNS = ["flop_convention", "focusbench_version", "git_commit", "build_flags", "command", "device",
                   "device_name", "cpu_model", "cpu_threads", "blas_core", "driver_version", "cuda_driver_version",
                   "cuda_runtime_version", "cudnn_version", "cublas_version", "cupti_version", "clock_sm_mhz",
                   "clock_mem_mhz", "seed"]
TORCH_SEED = 1  # torch.Generator seed of every layer's inputs (the CSV's seed column)


def fail(msg, code=1):
    print(f"bench_ops_torch: {msg}", file=sys.stderr)
    sys.exit(code)


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def select_openblas_core():
    """Mirrors bench/blas_select.c: AVX-512 CPU + an AVX2 OpenBLAS core → SkylakeX kernels.
    Must run before torch (and with it OpenBLAS) is imported. Returns a note for the header."""
    if os.environ.get("FOCUSBENCH_KEEP_OPENBLAS_CORETYPE"):
        return f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(auto)')} kept by request"
    flags = cpu_flags()
    if not {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags:
        return f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(auto)')}"
    was = os.environ.get("OPENBLAS_CORETYPE")
    amd = False
    try:
        with open("/proc/cpuinfo") as f:
            amd = "AuthenticAMD" in f.read(4096)
    except OSError:
        pass
    # OpenBLAS 0.3.21 maps AMD Zen 4/5 to its Haswell/Zen (AVX2) kernels when left to choose.
    if was in ("Haswell", "Zen") or (was is None and amd):
        os.environ["OPENBLAS_CORETYPE"] = "SkylakeX"
        return f"OPENBLAS_CORETYPE=SkylakeX (was {was or '(auto)'}; this CPU has AVX-512)"
    return f"OPENBLAS_CORETYPE={was or '(auto)'}"


def run_focusbench(binary, args):
    try:
        r = subprocess.run([binary] + args, capture_output=True, text=True, check=False)
    except OSError as e:
        fail(f"cannot run {binary}: {e} (build it with `make`, or pass --bin)")
    if r.returncode != 0:
        fail(f"{binary} {' '.join(args)} exited {r.returncode}: {r.stderr.strip()}", 2 if r.returncode == 2 else 1)
    return r.stdout


def read_layers(binary, filt):
    args = ["bench-ops", "--list-layers"] + (["--filter", filt] if filt else [])
    rows = list(csv.DictReader(run_focusbench(binary, args).splitlines()))
    ints = ("cin", "cout", "h", "w", "ksize", "stride", "pad", "groups", "rows_per_sample")
    for r in rows:
        for k in ints:
            r[k] = int(r[k])
    return rows


def conv_out(n, k, s, p):
    return (n + 2 * p - k) // s + 1


def layer_macs(L, batch):
    if L["kind"] == "linear":
        return batch * L["rows_per_sample"] * L["cin"] * L["cout"]
    ho, wo = conv_out(L["h"], L["ksize"], L["stride"], L["pad"]), conv_out(L["w"], L["ksize"], L["stride"], L["pad"])
    return batch * L["cout"] * ho * wo * (L["cin"] // L["groups"]) * L["ksize"] * L["ksize"]


def layer_shape(L, batch):
    if L["kind"] == "linear":
        return f"M{batch * L['rows_per_sample']} {L['cin']}->{L['cout']}"
    return f"N{batch} {L['cin']}->{L['cout']} {L['h']}x{L['w']} k{L['ksize']} s{L['stride']} g{L['groups']}"


def percentile(sorted_v, q):
    """Linear interpolation, numpy's default and bench-ops' choice."""
    pos = q * (len(sorted_v) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_v) - 1)
    return sorted_v[lo] + (pos - lo) * (sorted_v[hi] - sorted_v[lo])


def time_layer(torch, L, opts, backward):
    F = torch.nn.functional
    g = torch.Generator().manual_seed(TORCH_SEED)
    needs_grad = backward
    if L["kind"] == "conv2d":
        x = torch.rand(opts.batch, L["cin"], L["h"], L["w"], generator=g) * 2 - 1
        w = (torch.rand(L["cout"], L["cin"] // L["groups"], L["ksize"], L["ksize"], generator=g) * 2 - 1)
        fan_in = (L["cin"] // L["groups"]) * L["ksize"] ** 2

        def fwd(x, w, b):
            return F.conv2d(x, w, b, stride=L["stride"], padding=L["pad"], groups=L["groups"])
    else:
        x = torch.rand(opts.batch * L["rows_per_sample"], L["cin"], generator=g) * 2 - 1
        w = torch.rand(L["cout"], L["cin"], generator=g) * 2 - 1
        fan_in = L["cin"]

        def fwd(x, w, b):
            return F.linear(x, w, b)
    w = w / math.sqrt(fan_in)
    b = torch.rand(L["cout"], generator=g) * 2 - 1
    for t in (x, w, b):
        t.requires_grad_(needs_grad)

    def one_run():
        if not backward:
            with torch.no_grad():
                t0 = time.perf_counter()
                fwd(x, w, b)
                return time.perf_counter() - t0
        y = fwd(x, w, b)
        dy = torch.ones_like(y)
        t0 = time.perf_counter()
        y.backward(dy)
        return time.perf_counter() - t0

    for _ in range(1 + opts.warmup):  # the first run plans (oneDNN primitive creation), like bench-ops
        one_run()
    samples, spent = [], 0.0
    while len(samples) < opts.repeats or spent < opts.min_time:
        dt = one_run()
        samples.append(dt)
        spent += dt
    samples.sort()
    return {
        "runs": len(samples),
        "latency_ms_min": samples[0] * 1e3,
        "latency_ms_p25": percentile(samples, 0.25) * 1e3,
        "latency_ms_median": percentile(samples, 0.5) * 1e3,
        "latency_ms_p75": percentile(samples, 0.75) * 1e3,
    }


def read_compare(path):
    """{(layer, pass): latency_ms_median} from a `focusbench bench-ops --csv` file."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        fail(f"cannot read --compare {path}: {e}", 2)
    if rows and not {"layer", "pass", "latency_ms_median"} <= rows[0].keys():
        fail(f"--compare {path} is not a bench-ops CSV of schema_version {SCHEMA_VERSION}: it needs the columns "
             f"layer, pass, latency_ms_median (columns: {', '.join(rows[0].keys())})", 2)
    try:
        return {(r["layer"], r["pass"]): float(r["latency_ms_median"]) for r in rows}
    except ValueError as e:
        fail(f"--compare {path}: latency_ms_median is not a number: {e}", 2)


def flop_convention():
    """FLOP_CONVENTION of kernels/context.h (the flop_convention column), read from the source
    so the two CSVs say the same thing; "" if the source is not next to this script."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        with open(os.path.join(here, "..", "kernels", "context.h")) as f:
            m = re.search(r'#define\s+FLOP_CONVENTION\s+"([^"]*)"', f.read())
        return m.group(1) if m else ""
    except OSError:
        return ""


def focusbench_version(binary):
    """(version, git commit) of the focusbench binary that supplied the layer table and peak."""
    try:
        out = subprocess.run([binary, "version"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return "", ""
    m = re.match(r"focusbench (\S+) \(git (\S+)\)", out)
    return (m.group(1), m.group(2)) if m else ("", "")


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def csv_number(x):
    """A number as focusbench writes it: shortest round trip (Python's repr), NaN empty."""
    if isinstance(x, float) and math.isnan(x):
        return ""
    return repr(x) if isinstance(x, float) else str(x)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="See the module docstring (head of this file) for the protocol.")
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--bin", default=os.environ.get("FOCUSBENCH_BIN", os.path.join(here, "..", "build", "focusbench")),
                    help="the focusbench binary (layer table and FMA peak) [$FOCUSBENCH_BIN or build/focusbench]")
    ap.add_argument("--batch", type=int, default=16, help="batch size; linear rows = batch x 16 [16]")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads [OMP_NUM_THREADS or all cores]")
    ap.add_argument("--repeats", type=int, default=10, help="at least N timed runs per layer [10]")
    ap.add_argument("--min-time", type=float, default=0.5, help="and at least S seconds per layer [0.5]")
    ap.add_argument("--warmup", type=int, default=2, help="untimed runs after the first [2]")
    ap.add_argument("--filter", default=None, help="comma-separated substrings of layer names (as bench-ops)")
    ap.add_argument("--backward", action="store_true", help="also time the backward pass")
    ap.add_argument("--peak", type=float, default=None,
                    help="FMA peak in GFLOP/s for the %%peak column (default: measured by focusbench bench-ops "
                         "--peak-only with the same threads)")
    ap.add_argument("--peak-time", type=float, default=1.0, help="seconds focusbench spends measuring the peak [1]")
    ap.add_argument("--csv", default=None, help="also write the rows to this CSV (bench-ops' columns)")
    ap.add_argument("--compare", default=None, metavar="CSV",
                    help="a `focusbench bench-ops --csv` file: adds its median and torch/focusbench time ratio")
    opts = ap.parse_args()
    if opts.batch < 1 or opts.repeats < 1 or opts.warmup < 0 or not (opts.min_time >= 0) or \
            (opts.threads is not None and opts.threads < 1):
        fail("--batch, --repeats, --threads must be >= 1, --warmup and --min-time >= 0", 2)
    threads = opts.threads or int(os.environ.get("OMP_NUM_THREADS", 0) or os.cpu_count() or 1)

    blas_note = select_openblas_core()
    try:
        import torch
    except ImportError as e:
        fail(f"PyTorch is not importable by {sys.executable} ({e}); install Debian's python3-torch with "
             "`scripts/install-deps.sh --torch` and run this script with /usr/bin/python3")
    torch.set_num_threads(threads)

    layers = read_layers(opts.bin, opts.filter)
    if opts.peak is not None:
        peak, peak_note, peak_isa = opts.peak, "given with --peak", ""
    else:
        out = run_focusbench(opts.bin, ["bench-ops", "--peak-only", "--threads", str(threads),
                                        "--peak-time", str(opts.peak_time)])
        fields = dict(kv.split("=", 1) for kv in out.split())
        peak = float(fields["peak_gflops"])
        peak_isa = fields.get("isa", "")
        peak_note = f"{peak_isa or '?'}, measured by focusbench, {threads} thread(s)"
    compare = read_compare(opts.compare) if opts.compare else None

    print(f"PyTorch {torch.__version__} CPU: batch {opts.batch}, {torch.get_num_threads()} thread(s), "
          f"mkldnn {'on' if torch.backends.mkldnn.is_available() else 'off'}; {blas_note}")
    print(f"fp32 FMA peak: {peak:.1f} GFLOP/s ({peak_note})")
    print("GFLOP/s = 2 x MACs / median time; MACs of conv/linear, bias not counted")
    print(f"timing: {opts.warmup} warm-up run(s), then >= {opts.repeats} runs and >= {opts.min_time:.2f} s per layer\n")
    head = f"{'layer':<22} {'shape':<28} {'pass':<4} {'median_ms':>10} {'iqr_ms':>10} {'min_ms':>9} " \
           f"{'runs':>5} {'GFLOP/s':>9} {'%peak':>7}"
    if compare is not None:
        head += f" {'fb_ms':>10} {'torch/fb':>8}"
    print(head)

    writer, csv_file = None, None
    if opts.csv:
        tmp = opts.csv + ".tmp"
        csv_file = open(tmp, "w", newline="")
        writer = csv.writer(csv_file, lineterminator="\n")
        writer.writerow(["schema_version"] + CSV_COLUMNS + CSV_ENV_COLUMNS)
        fb_version, fb_commit = focusbench_version(opts.bin)
        model = cpu_model()
        # The environment, the same on every row; the build_flags column says what timed the rows.
        env_row = [flop_convention(), fb_version, fb_commit,
                   f"torch={torch.__version__} mkldnn={int(torch.backends.mkldnn.is_available())}",
                   shlex.join([sys.executable] + sys.argv), "cpu", model, model, torch.get_num_threads(),
                   os.environ.get("OPENBLAS_CORETYPE", ""), "", "", "", "", "", "", "", "", TORCH_SEED]
        assert len(env_row) == len(CSV_ENV_COLUMNS)

    groups = {}
    for i, L in enumerate(layers):
        shape = layer_shape(L, opts.batch)
        for backward in ([False, True] if opts.backward else [False]):
            pname = "bwd" if backward else "fwd"
            print(f"bench_ops_torch: [{i + 1}/{len(layers)}] {L['name']} {shape} {pname}...", end="",
                  file=sys.stderr, flush=True)
            st = time_layer(torch, L, opts, backward)
            macs = layer_macs(L, opts.batch) * (2 if backward else 1)
            gflops = 2.0 * macs / (st["latency_ms_median"] * 1e-3) * 1e-9
            iqr = st["latency_ms_p75"] - st["latency_ms_p25"]
            print(f" {st['latency_ms_median']:.3f} ms, {gflops:.1f} GFLOP/s", file=sys.stderr)
            line = f"{L['name']:<22} {shape:<28} {pname:<4} {st['latency_ms_median']:10.3f} " \
                   f"{iqr:10.3f} {st['latency_ms_min']:9.3f} {st['runs']:5d} {gflops:9.1f} " \
                   f"{100 * gflops / peak:6.1f}%"
            if compare is not None:
                fb = compare.get((L["name"], pname))
                line += f" {fb:10.3f} {st['latency_ms_median'] / fb:8.2f}" if fb else f" {'-':>10} {'-':>8}"
            print(line, flush=True)
            g = groups.setdefault((L["group"], pname), [0.0, 0.0, 0, 0.0])
            g[0] += 2.0 * macs
            g[1] += st["latency_ms_median"] * 1e-3
            g[2] += 1
            if compare is not None and compare.get((L["name"], pname)):
                g[3] += compare[(L["name"], pname)] * 1e-3
            if writer:
                rows = opts.batch * L["rows_per_sample"] if L["kind"] == "linear" else 0
                row = [L["name"], L["net"], L["group"], L["kind"], shape, opts.batch, L["cin"], L["cout"], L["h"],
                       L["w"], L["ksize"], L["stride"], L["pad"], L["groups"], rows, macs, pname,
                       f"pytorch-{torch.__version__}", threads, st["runs"], st["latency_ms_median"],
                       st["latency_ms_p25"], st["latency_ms_p75"], iqr, st["latency_ms_min"], gflops, float(peak),
                       100 * gflops / peak, float(peak), float(peak), peak_isa]
                assert len(row) == len(CSV_COLUMNS)
                writer.writerow([SCHEMA_VERSION] + [csv_number(v) for v in row] + env_row)

    print("\nsummary (each group's layers run once: sum of 2 x MACs / sum of medians):")
    for (group, pname), (flops, secs, n, fb_secs) in groups.items():
        gf = flops / secs * 1e-9
        line = f"  {group:<24} {pname} {n:2d} layer(s) {gf:9.1f} GFLOP/s {100 * gf / peak:6.1f}% of peak"
        if compare is not None and fb_secs > 0:
            line += f"   focusbench {flops / fb_secs * 1e-9:9.1f} GFLOP/s"
        print(line)
    if csv_file:
        csv_file.close()
        os.replace(opts.csv + ".tmp", opts.csv)


if __name__ == "__main__":
    main()
