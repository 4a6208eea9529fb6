#!/usr/bin/env python3
"""bench_pytorch.py — the official Uni-AdaFocus PyTorch code timed the way `focusbench profile` times ours.

    python3 scripts/bench_pytorch.py --official PATH [--preset actnet-p128] [--batch 1,8,32]
                                     [--precision fp32,tf32,bf16] [--repeats 20] [--min-time 1]
                                     [--warmup 10] [--lean] [--csv FILE] [--compare PROFILE.csv]

PATH is an extracted checkout of LeapLabTHU/Uni-AdaFocus (the repository root or its "Uni-AdaFocus with
Experiments on ActivityNet, FCVID and Mini-Kinetics" folder); it is imported as it is and never modified.
On the GPU machines run it with the torch venv's interpreter (/opt/torch/.venv/bin/python3: torch 2.11,
torchvision, CUDA 13).

What it measures, for every precision and batch size:
  * the official AdaFocus model (models/uni_adafocus.py) at the preset's size (actnet-p128: T = 48, G = 16,
    F = 16, S = 224, P = 128, 200 classes) on CUDA, random weights (PyTorch / torchvision initialisation;
    batch-norm running statistics set by one training-mode pass over the clip with momentum 1, so every
    layer runs in a realistic range and the sampler never sees NaN), eval mode, under torch.no_grad();
  * the forward pass `model(clip)` exactly as the official eval code runs it — which, in eval mode too,
    also computes the two auxiliary training-loss branches (the Monte-Carlo temporal logits and the
    spatial feature-crop logits). --lean instead runs the official modules along the inference path only
    (glance, both policies, the sampler, the crop, the local CNN, the classifier: the work focusbench's
    eval pass does) and labels the rows "official-pytorch-lean";
  * torch.backends.cudnn.benchmark = True; TF32 explicitly OFF for fp32 and bf16 (strict fp32 is strict
    on both sides) and ON for tf32; bf16 through torch.autocast(dtype=torch.bfloat16), fp32 weights;
  * a random normalised clip batch (B, T, 3, S, S) already on the GPU;
  * latency with CUDA events around each forward pass: --warmup passes first, then passes until both
    --repeats samples and --min-time seconds; median, p90, p99, IQR (linear interpolation at q·(n − 1),
    as bench/latency.c), throughput = batch / median; SM clock (NVML) before and after.

Output: a table, and with --csv the same columns as `focusbench profile`'s CSV (bench/cmd_profile.c, schema
version 1; method "official-pytorch", level "pass", component "total", mode "eager", timing "cuda-events",
then the environment columns), so the two files sit side by side in `focusbench report` / `regress`.
--compare PROFILE.csv (a `focusbench profile --device cuda` CSV) prints PyTorch and focusbench next to each
other: videos/s and median latency per batch and precision, eager and graph, and the speed-up.

Shims applied at run time (the official files stay untouched): the backbone constructors are called with
pretrained=False (the official ones read an ImageNet file from ../ckpt or download one); if PIL is missing,
ops.transforms is replaced by a stub (only its training augmentations are referenced).
"""
import argparse
import csv
import math
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
import types
import warnings

SUBDIR = "Uni-AdaFocus with Experiments on ActivityNet, FCVID and Mini-Kinetics"
SCHEMA_VERSION = 1  # bench/csv_out.h CSV_SCHEMA_VERSION
FLOP_CONVENTION = "paper-macs (conv/linear MACs, no bias, +1 per BN channel per sample)"  # kernels/context.h

# The official argparse settings of each preset (README commands): what AdaFocus.__init__ reads.
PRESETS = {
    "actnet-p96": dict(dataset="actnet", num_classes=200, patch_size=96, fc_dropout=0.2),
    "actnet-p128": dict(dataset="actnet", num_classes=200, patch_size=128, fc_dropout=0.2),
    "actnet-p160": dict(dataset="actnet", num_classes=200, patch_size=160, fc_dropout=0.2),
    "actnet-p192": dict(dataset="actnet", num_classes=200, patch_size=192, fc_dropout=0.2),
    "fcvid-p128": dict(dataset="fcvid", num_classes=239, patch_size=128, fc_dropout=0.2),
    "minik-p128": dict(dataset="minik", num_classes=200, patch_size=128, fc_dropout=0.1),
}

# `focusbench profile`'s CSV columns (bench/cmd_profile.c COLS), in its order, then the environment
# (bench/csv_out.c CSV_ENV_COLUMNS).
COLUMNS = ["method", "preset", "precision", "batch", "mode", "level", "component", "kernel", "samples", "warmup",
           "latency_ms_median", "latency_ms_p90", "latency_ms_p99", "latency_ms_iqr", "latency_ms_mean",
           "latency_ms_min", "latency_ms_max", "throughput_videos_per_s", "time_ms_median", "time_ms_iqr",
           "time_share_pct", "launches_per_pass", "gflops_per_video", "achieved_gflops_per_s", "timing", "bn_folded",
           "clock_sm_mhz_min", "clock_sm_mhz_max", "clock_event_reasons", "note"]
ENV_COLUMNS = ["flop_convention", "focusbench_version", "git_commit", "build_flags", "command", "device", "device_name",
               "cpu_model", "cpu_threads", "blas_core", "driver_version", "cuda_driver_version", "cuda_runtime_version",
               "cudnn_version", "cublas_version", "cupti_version", "clock_sm_mhz", "clock_mem_mhz", "seed"]


def fail(msg, code=1):
    print(f"bench_pytorch: {msg}", file=sys.stderr)
    sys.exit(code)


try:
    import torch
    import torch.nn.functional as F
except ImportError as e:  # pragma: no cover
    fail(f"needs PyTorch (on the GPU machines: /opt/torch/.venv/bin/python3): {e}", 2)


# ---- statistics (bench/latency.c) ------------------------------------------------------------------

def quantile(sorted_v, q):
    n = len(sorted_v)
    if n == 0:
        return math.nan
    if q <= 0:
        return sorted_v[0]
    if q >= 1:
        return sorted_v[-1]
    pos = q * (n - 1)
    lo = int(math.floor(pos))
    if lo + 1 >= n:
        return sorted_v[-1]
    return sorted_v[lo] + (pos - lo) * (sorted_v[lo + 1] - sorted_v[lo])


def stats(samples):
    v = sorted(samples)
    q1, q3 = quantile(v, 0.25), quantile(v, 0.75)
    return dict(n=len(v), median=quantile(v, 0.5), p90=quantile(v, 0.9), p99=quantile(v, 0.99), iqr=q3 - q1,
                mean=sum(v) / len(v), min=v[0], max=v[-1])


# ---- NVML (read only) -----------------------------------------------------------------------------

class Clocks:
    def __init__(self):
        self.nvml, self.handle, self.driver, self.why = None, None, "", ""
        try:
            import pynvml
            pynvml.nvmlInit()
            idx = torch.cuda.current_device()
            p = torch.cuda.get_device_properties(idx)
            try:  # NVML's and CUDA's device orders may differ: match by PCI address where torch gives it
                bus = "%08X:%02X:%02X.0" % (p.pci_domain_id, p.pci_bus_id, p.pci_device_id)
                self.handle = pynvml.nvmlDeviceGetHandleByPciBusId(bus)
            except Exception:  # noqa: BLE001
                self.handle = pynvml.nvmlDeviceGetHandleByIndex(idx)
            d = pynvml.nvmlSystemGetDriverVersion()
            self.driver = d.decode() if isinstance(d, bytes) else d
            self.nvml = pynvml
        except Exception as e:  # noqa: BLE001 — clocks are optional
            self.why = f"NVML unavailable ({e}): clocks unknown"

    def read(self):
        if not self.nvml:
            return math.nan, math.nan
        try:
            return (float(self.nvml.nvmlDeviceGetClockInfo(self.handle, self.nvml.NVML_CLOCK_SM)),
                    float(self.nvml.nvmlDeviceGetClockInfo(self.handle, self.nvml.NVML_CLOCK_MEM)))
        except Exception:  # noqa: BLE001
            return math.nan, math.nan


# ---- the official model ---------------------------------------------------------------------------

def import_official(path):
    cand = [path, os.path.join(path, SUBDIR)]
    root = next((c for c in cand if os.path.isfile(os.path.join(c, "models", "uni_adafocus.py"))), None)
    if root is None:
        fail(f"no models/uni_adafocus.py under {path} or {path}/{SUBDIR} (give an extracted official checkout)", 2)
    sys.path.insert(0, root)
    try:
        import PIL  # noqa: F401  (ops.transforms needs it)
    except ImportError:
        stub = types.ModuleType("ops.transforms")
        stub.GroupMultiScaleCrop = stub.GroupRandomHorizontalFlip = object
        sys.modules["ops.transforms"] = stub
    import models.uni_adafocus as ua
    import models.mobilenet_v2 as mn
    import models.resnet as rn
    ua.mobilenet_v2 = lambda pretrained=True: mn.mobilenet_v2(pretrained=False)
    ua.resnet50 = lambda pretrained=True, **kw: rn.resnet50(pretrained=False, **kw)
    return root, ua


def build_official(ua, preset, batch, device):
    p = PRESETS[preset]
    args = argparse.Namespace(
        num_segments=48, num_glance_segments=16, num_focus_segments=16, num_classes=p["num_classes"],
        dataset=p["dataset"], input_size=224, batch_size=batch, patch_size=p["patch_size"], glance_arch="mbv2",
        device=device, fc_dropout=p["fc_dropout"], dropout=0.2, stn_hidden_dim=128, temporal_hidden_dim=64,
        temperature=1.0)
    return ua.AdaFocus(args).to(device), args


def calibrate(model, clip):
    """Batch-norm running statistics := the batch statistics of one training-mode pass (momentum 1)."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    with torch.no_grad():
        for m in bns:
            m.momentum = 1.0
        model.train()
        model(clip)
        for m in bns:
            m.momentum = 0.1
    model.eval()


def lean_forward(model, ua, images):
    """The official eval path without the two auxiliary training-loss branches (MCSampleFeature and the
    spatial feature-crop logits), built from the official modules and functions."""
    m = model
    _b = images.size(0)
    glance_indices = torch.arange(m.num_segments)[1::m.num_segments // m.num_glance_segments].repeat(_b, 1)
    glance_indices = (glance_indices + torch.arange(0, _b).unsqueeze(1) * m.num_segments).view(-1)
    images = images.view(-1, 3, m.input_size, m.input_size)
    global_feat_map, global_feat = m.global_CNN.get_featmap(images[glance_indices])
    actions_1 = m.spatial_policy(global_feat_map).view(-1, m.num_glance_segments, 4).permute(0, 2, 1)
    actions_1 = F.interpolate(actions_1, m.num_segments, mode="linear", align_corners=False)
    actions_1 = actions_1.permute(0, 2, 1).contiguous().view(-1, 4)
    _, weights_T = m.temporal_policy(global_feat)
    focus_indices = ua.policy_sample_indices(weights_T, m.num_segments, m.num_glance_segments, m.num_focus_segments,
                                             False, m.device)
    patches = ua.get_patch_grid_scalexy(images[focus_indices], actions_1[focus_indices], m.patch_size, m.input_size,
                                        m.patch_size)
    local_feat = m.local_CNN.get_featvec(patches)
    _, pred = m.classifier(global_feat.view(-1, m.num_glance_segments, m.global_feature_dim),
                           local_feat.view(-1, m.num_focus_segments, m.local_feature_dim))
    return pred


def train_loss(outs, labels, G, F):
    """The official training objective's terms (cross-entropy of the concatenated, glance, local, temporal and
    spatial logits of both patch sets, halved; the box-size term), written here from main.py's definition;
    the KL term is left out (its ratio only scales a 16-element sum)."""
    ce = torch.nn.functional.cross_entropy
    B = labels.shape[0]
    lg, ll, lc = labels.repeat_interleave(G), labels.repeat_interleave(F), labels.repeat_interleave(G + F)
    total = 0.0
    for o in outs:
        total = total + ce(o[0], lc) + ce(o[2], lg) + ce(o[3], ll) + ce(o[4], labels) + ce(o[5], labels)
    boxes = outs[0][6][:, 2:4]
    assert boxes.shape[0] >= B
    return total / 2 + ((boxes - 1.0) ** 2).mean()


def set_precision(prec):
    """TF32 on only for tf32 (the old flags and, where torch has them, the fp32_precision knobs)."""
    tf32 = prec == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    try:
        torch.set_float32_matmul_precision("high" if tf32 else "highest")
    except Exception:  # noqa: BLE001
        pass


def time_passes(run, warmup, repeats, min_time, cuda):
    """CUDA events around each pass on the GPU (never a host clock around asynchronous work); the host
    clock on the CPU (--device cpu, a smoke test of this script)."""
    for _ in range(warmup):
        run()
    if cuda:
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    samples, t0 = [], time.monotonic()
    while len(samples) < repeats or time.monotonic() - t0 < min_time:
        if cuda:
            start.record()
            run()
            end.record()
            end.synchronize()
            samples.append(start.elapsed_time(end))
        else:
            h0 = time.perf_counter()
            run()
            samples.append((time.perf_counter() - h0) * 1e3)
    return samples


# ---- output ---------------------------------------------------------------------------------------

def fmt(v):
    """focusbench's CSV convention: strings quoted, numbers bare (shortest round trip), NaN empty."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return '"yes"' if v else '"no"'
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return ""
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    return '"' + str(v).replace('"', '""') + '"'


def write_csv(path, rows, env):
    tmp = path + ".tmp"
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(",".join(["schema_version"] + COLUMNS + ENV_COLUMNS) + "\n")
            for r in rows:
                vals = [fmt(SCHEMA_VERSION)] + [fmt(r.get(c)) for c in COLUMNS] + [fmt(env.get(c)) for c in ENV_COLUMNS]
                f.write(",".join(vals) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        fail(f"cannot write {path}: {e} (check the directory exists and is writable)")


def analytic_gflops(bin_path, preset):
    """The preset's total GFLOPs per video from `focusbench flops --preset P --csv` (paper convention), or NaN."""
    if not bin_path or not os.access(bin_path, os.X_OK):
        return math.nan
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "flops.csv")
        try:
            subprocess.run([bin_path, "flops", "--preset", preset, "--csv", out], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
            with open(out, newline="") as f:
                for row in csv.DictReader(f):
                    if row.get("item") == "total":
                        return float(row["gflops"])
        except (OSError, subprocess.SubprocessError, ValueError, KeyError):
            pass
    return math.nan


def git_commit():
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        return subprocess.run(["git", "-C", here, "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True,
                              timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def compare(path, rows):
    """PyTorch rows next to a focusbench profile CSV's pass rows of the same batch and precision."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            fb = [r for r in csv.DictReader(f) if r.get("level") == "pass" and r.get("latency_ms_median")]
    except OSError as e:
        fail(f"--compare: cannot read {path}: {e}")
    if not fb:
        fail(f"--compare: {path} has no pass rows with a latency (is it a `focusbench profile` CSV?)")
    devs = sorted({f"{r.get('device', '?')} {r.get('device_name', '?')}" for r in fb})
    print(f"\nside by side with {path} ({', '.join(devs)}; speed-up = focusbench videos/s / PyTorch videos/s)")
    print(f"  {'precision':9}  {'batch':>5}  {'PyTorch ms':>10}  {'videos/s':>9}  {'fb eager ms':>11}  {'videos/s':>9}"
          f"  {'x':>5}  {'fb graph ms':>11}  {'videos/s':>9}  {'x':>5}")
    for r in rows:
        def pick(mode):
            for x in fb:
                if x["precision"] == r["precision"] and int(float(x["batch"])) == r["batch"] and x["mode"] == mode:
                    return float(x["latency_ms_median"]), float(x["throughput_videos_per_s"])
            return None
        line = f"  {r['precision']:9}  {r['batch']:5d}  {r['latency_ms_median']:10.3f}  {r['throughput_videos_per_s']:9.1f}"
        for mode in ("eager", "graph"):
            p = pick(mode)
            if p:
                line += f"  {p[0]:11.3f}  {p[1]:9.1f}  {p[1] / r['throughput_videos_per_s']:5.2f}"
            else:
                line += f"  {'-':>11}  {'-':>9}  {'-':>5}"
        print(line)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--official", required=True, help="extracted LeapLabTHU/Uni-AdaFocus checkout")
    ap.add_argument("--preset", default="actnet-p128", choices=sorted(PRESETS))
    ap.add_argument("--batch", default="1,8,32", help="comma-separated batch sizes (default 1,8,32)")
    ap.add_argument("--precision", default="fp32,tf32,bf16", help="comma-separated: fp32, tf32, bf16")
    ap.add_argument("--repeats", type=int, default=20, help="at least this many timed passes (default 20)")
    ap.add_argument("--min-time", type=float, default=1.0, help="... and at least this many seconds (default 1)")
    ap.add_argument("--warmup", type=int, default=10, help="untimed passes first (default 10; cudnn.benchmark "
                    "autotunes during them)")
    ap.add_argument("--lean", action="store_true", help="inference path only (no auxiliary training-loss branches)")
    ap.add_argument("--train", action="store_true",
                    help="time training steps instead: model.train(), the official forward with both patch sets, "
                         "the training loss of main.py's terms, backward (no optimizer update), as "
                         "`focusbench profile --train`")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"],
                    help="cuda (default); cpu only to smoke-test this script where no GPU is (host clock, fp32)")
    ap.add_argument("--csv", help="write the rows (focusbench profile's columns) to this file, atomically")
    ap.add_argument("--compare", help="a `focusbench profile --device cuda` CSV to print side by side")
    ap.add_argument("--bin", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build",
                                                  "focusbench"),
                    help="focusbench binary for the analytic GFLOPs per video (default build/focusbench)")
    a = ap.parse_args()
    try:
        batches = [int(b) for b in a.batch.split(",")]
        assert batches and all(b >= 1 for b in batches)
    except (ValueError, AssertionError):
        fail(f"--batch wants comma-separated positive integers, got '{a.batch}'", 2)
    precs = a.precision.split(",")
    if not precs or any(p not in ("fp32", "tf32", "bf16") for p in precs):
        fail(f"--precision wants a list of fp32, tf32, bf16, got '{a.precision}'", 2)
    if a.repeats < 1 or a.min_time < 0 or a.warmup < 0:
        fail("--repeats must be >= 1, --min-time and --warmup >= 0", 2)
    # the official crop calls affine_grid / grid_sample without align_corners (the default, False, is meant)
    warnings.filterwarnings("ignore", message="Default grid_sample and affine_grid behavior")
    root, ua = import_official(a.official)
    cuda = a.device == "cuda"
    if cuda and not torch.cuda.is_available():
        fail("no CUDA device visible to PyTorch (this script times the official code on the GPU; --device cpu only "
             "smoke-tests it)")
    if not cuda and precs != ["fp32"]:
        fail("--device cpu runs fp32 only (give --precision fp32)", 2)

    device = torch.device(a.device)
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(a.seed)
    gen = torch.Generator(device=a.device).manual_seed(a.seed)
    bmax = max(batches)
    print(f"bench_pytorch: official Uni-AdaFocus from {root}", flush=True)
    model, margs = build_official(ua, a.preset, bmax, device)
    T, S = margs.num_segments, margs.input_size
    clips = torch.randn(bmax, T, 3, S, S, device=device, generator=gen)  # normalised frames
    set_precision("fp32")
    calibrate(model, clips[:min(bmax, 8)])
    clocks = Clocks() if cuda else types.SimpleNamespace(driver="", why="", read=lambda: (math.nan, math.nan))
    gflops = analytic_gflops(os.path.normpath(a.bin), a.preset)
    method = "official-pytorch-lean" if a.lean else "official-pytorch"
    if a.train:
        if a.lean:
            fail("--train and --lean exclude each other", 2)
        method = "official-pytorch-train"
    dev_name = torch.cuda.get_device_properties(device).name if cuda else cpu_model()
    cudnn_v = (torch.backends.cudnn.version() or 0) if cuda else 0
    print(f"device: {dev_name}; torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN "
          f"{cudnn_v // 10000}.{cudnn_v // 100 % 100}.{cudnn_v % 100}; driver {clocks.driver or 'unknown'}")
    print(f"model: {a.preset} (T {T}, G {margs.num_glance_segments}, F {margs.num_focus_segments}, S {S}, "
          f"P {margs.patch_size}, {margs.num_classes} classes), random weights, "
          + ("TRAINING steps: model.train(), forward of both patch sets, training loss, backward (no optimizer "
             "update), " if a.train else "eval, torch.no_grad(), ")
          + f"cudnn.benchmark on; forward: {'inference path only (--lean)' if a.lean else 'the official model(clip)'}")
    if clocks.why:
        print(clocks.why)
    print(f"timing: {'CUDA events' if cuda else 'host clock'} around each pass; {a.warmup} warm-up passes, then until >= {a.repeats} samples "
          f"and >= {a.min_time:g} s\n")
    print(f"  {'precision':9}  {'batch':>5}  {'samples':>7}  {'median ms':>9}  {'p90 ms':>9}  {'p99 ms':>9}  "
          f"{'IQR ms':>8}  {'videos/s':>9}  SM MHz", flush=True)

    rows, clk_seen, mem_seen = [], [], []
    for prec in precs:
        set_precision(prec)
        for B in batches:
            x = clips[:B]

            def run():
                with torch.no_grad(), torch.autocast(a.device, dtype=torch.bfloat16, enabled=prec == "bf16"):
                    return lean_forward(model, ua, x) if a.lean else model(x)

            if a.train:
                labels = torch.arange(B, device=device) % margs.num_classes
                model.train()

                def run():
                    model.zero_grad(set_to_none=True)
                    with torch.autocast(a.device, dtype=torch.bfloat16, enabled=prec == "bf16"):
                        loss = train_loss(model(x), labels, margs.num_glance_segments, margs.num_focus_segments)
                    loss.backward()
                    return loss.detach().reshape(1)

            out = run()
            pred = out if (a.lean or a.train) else out[1]
            note = "" if bool(torch.isfinite(pred.float()).all()) else "the prediction has non-finite values"
            c0, m0 = clocks.read()
            samples = time_passes(run, a.warmup, a.repeats, a.min_time, cuda)
            c1, m1 = clocks.read()
            st = stats(samples)
            clk = [c for c in (c0, c1) if not math.isnan(c)]
            clk_seen += clk
            mem_seen += [m for m in (m0, m1) if not math.isnan(m)]
            med_s = st["median"] * 1e-3
            rows.append(dict(
                method=method, preset=a.preset, precision=prec, batch=B, mode="train" if a.train else "eager", level="pass", component="total",
                kernel="", samples=st["n"], warmup=a.warmup, latency_ms_median=st["median"], latency_ms_p90=st["p90"],
                latency_ms_p99=st["p99"], latency_ms_iqr=st["iqr"], latency_ms_mean=st["mean"],
                latency_ms_min=st["min"], latency_ms_max=st["max"], throughput_videos_per_s=B / med_s,
                time_ms_median=st["median"], time_ms_iqr=st["iqr"], time_share_pct=100.0, launches_per_pass=math.nan,
                gflops_per_video=gflops, achieved_gflops_per_s=gflops * B / med_s,
                timing="cuda-events" if cuda else "host-clock",
                bn_folded=False, clock_sm_mhz_min=min(clk) if clk else math.nan,
                clock_sm_mhz_max=max(clk) if clk else math.nan, clock_event_reasons="", note=note))
            cs = f"{min(clk):.0f}..{max(clk):.0f}" if clk else "unknown"
            print(f"  {prec:9}  {B:5d}  {st['n']:7d}  {st['median']:9.3f}  {st['p90']:9.3f}  {st['p99']:9.3f}  "
                  f"{st['iqr']:8.3f}  {B / med_s:9.1f}  {cs}{'  ' + note if note else ''}", flush=True)

    if a.csv:
        v = cudnn_v
        env = dict(
            flop_convention=FLOP_CONVENTION, focusbench_version="", git_commit=git_commit(),
            build_flags=f"torch-{torch.__version__} official-pytorch{' lean' if a.lean else ''}",
            command=" ".join(shlex.quote(s) for s in ["scripts/bench_pytorch.py"] + sys.argv[1:]), device=a.device,
            device_name=dev_name, cpu_model=cpu_model(), cpu_threads=torch.get_num_threads(), blas_core="",
            driver_version=clocks.driver, cuda_driver_version="", cuda_runtime_version=torch.version.cuda or "",
            cudnn_version=f"{v // 10000}.{v // 100 % 100}.{v % 100}" if v else "", cublas_version="",
            cupti_version="", clock_sm_mhz=sum(clk_seen) / len(clk_seen) if clk_seen else math.nan,
            clock_mem_mhz=sum(mem_seen) / len(mem_seen) if mem_seen else math.nan, seed=a.seed)
        write_csv(a.csv, rows, env)
        print(f"\nwrote {a.csv}")
    if a.compare:
        compare(a.compare, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
