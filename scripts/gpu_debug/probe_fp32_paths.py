#!/usr/bin/env python3
"""probe_fp32_paths.py — where could strict-FP32 inference of actnet-p128 at batch 32 get faster?

Times, per conv layer of the two backbones at the batch-32 shapes (focus: ResNet-50 on 512
patches of 128x128; glance: MobileNetV2 on 512 frames of 224x224), strict FP32 (TF32 off for
cuDNN and cuBLAS, cudnn.benchmark on), with CUDA events (median of 15 after warm-up):
  nchw   cuDNN convolution on NCHW tensors (what focusbench's FP32 path runs today), no bias
  nhwc   cuDNN convolution on channels-last tensors, no bias
  gemm   1x1 stride-1 convs only: the same product as one SGEMM on the NHWC view (cuBLAS), no bias
and prints each layer, the sums weighted by how often the layer occurs, the kernel cuDNN ran for
the NCHW conv (torch.profiler) and its largest error against a float64 convolution, relative to
the largest output magnitude. No bias anywhere: PyTorch adds a conv's bias in a separate pass,
which would charge the cuDNN columns with memory traffic the GEMM column does not pay. A probe for
a design decision (REPORT section 4), not a benchmark of focusbench.
"""
import sys

import torch
import torch.nn.functional as F

torch.backends.cudnn.benchmark = True
torch.backends.cudnn.allow_tf32 = False
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction = False
dev = torch.device("cuda")


def timed(fn, reps=15):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        ts.append(a.elapsed_time(b))
    ts.sort()
    return ts[len(ts) // 2]


def kernel_of(fn):
    """Name of the longest GPU kernel one call of fn runs."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    best = max((e for e in prof.key_averages() if e.device_type.name == "CUDA"),
               key=lambda e: e.device_time_total, default=None)
    return best.key[:70] if best else "?"


def resnet50_layers(n, s):
    """(count, C, K, k, stride, groups, H) of ResNet-50 (stride on the 3x3), input s x s."""
    L = [(1, 3, 64, 7, 2, 1, s)]
    h = s // 4
    cin = 64
    for width, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        out = 4 * width
        L.append((1, cin, width, 1, 1, 1, h))
        L.append((1, width, width, 3, stride, 1, h))
        h //= stride
        L.append((1, width, out, 1, 1, 1, h))
        L.append((1, cin, out, 1, stride, 1, h * stride))
        L.append((blocks - 1, out, width, 1, 1, 1, h))
        L.append((blocks - 1, width, width, 3, 1, 1, h))
        L.append((blocks - 1, width, out, 1, 1, 1, h))
        cin = out
    return L


def mobilenetv2_layers(n, s):
    L = [(1, 3, 32, 3, 2, 1, s)]
    h = s // 2
    cin = 32
    for t, c, reps, stride in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                               (6, 160, 3, 2), (6, 320, 1, 1)):
        for i in range(reps):
            st = stride if i == 0 else 1
            hid = cin * t
            if t != 1:
                L.append((1, cin, hid, 1, 1, 1, h))
            L.append((1, hid, hid, 3, st, hid, h))
            h //= st
            L.append((1, hid, c, 1, 1, 1, h))
            cin = c
    L.append((1, cin, 1280, 1, 1, 1, h))
    return L


def merge(L):
    d = {}
    for cnt, *shape in L:
        d[tuple(shape)] = d.get(tuple(shape), 0) + cnt
    return [(c, *k) for k, c in d.items() if c > 0]


def probe(name, n, layers):
    print(f"\n{name}: batch {n} (strict fp32; ms per layer, median of 15)")
    print(f"{'count':>5} {'C':>5} {'K':>5} {'k':>2} {'s':>2} {'g':>4} {'H':>4} {'nchw':>8} {'nhwc':>8} {'gemm':>8}"
          f" {'TFLOP/s':>8} {'rel.err':>8}  cuDNN kernel (nchw)")
    tot = {"nchw": 0.0, "nhwc": 0.0, "best": 0.0}
    for cnt, C, K, k, s, g, H in merge(layers):
        x = torch.randn(n, C, H, H, device=dev)
        w = torch.randn(K, C // g, k, k, device=dev) * 0.05
        pad = k // 2
        t_nchw = timed(lambda: F.conv2d(x, w, None, s, pad, 1, g))
        kern = kernel_of(lambda: F.conv2d(x, w, None, s, pad, 1, g))
        ref = F.conv2d(x[:8].double(), w.double(), None, s, pad, 1, g)
        err = ((F.conv2d(x, w, None, s, pad, 1, g)[:8].double() - ref).abs().max() / ref.abs().max()).item()
        del ref
        xl = x.contiguous(memory_format=torch.channels_last)
        wl = w.contiguous(memory_format=torch.channels_last)
        t_nhwc = timed(lambda: F.conv2d(xl, wl, None, s, pad, 1, g))
        t_gemm = float("nan")
        if k == 1 and s == 1 and g == 1:
            xm = xl.permute(0, 2, 3, 1).reshape(-1, C)
            wm = w.view(K, C).t()
            t_gemm = timed(lambda: torch.mm(xm, wm))
        ho = (H + 2 * pad - k) // s + 1
        flop = 2.0 * n * K * ho * ho * (C // g) * k * k
        print(f"{cnt:5d} {C:5d} {K:5d} {k:2d} {s:2d} {g:4d} {H:4d} {t_nchw:8.3f} {t_nhwc:8.3f} {t_gemm:8.3f}"
              f" {flop / t_nchw / 1e9:8.1f} {err:8.1e}  {kern}")
        tot["nchw"] += cnt * t_nchw
        tot["nhwc"] += cnt * t_nhwc
        tot["best"] += cnt * min(t for t in (t_nchw, t_nhwc, t_gemm) if t == t)
        del x, xl, w, wl
    print(f"sum: nchw {tot['nchw']:.2f} ms, nhwc {tot['nhwc']:.2f} ms, best of the three per layer {tot['best']:.2f} ms")
    return tot


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 512
    print(torch.cuda.get_device_name(), "torch", torch.__version__, "cuDNN", torch.backends.cudnn.version())
    probe("focus ResNet-50 @128", n, resnet50_layers(n, 128))
    probe("glance MobileNetV2 @224", n, mobilenetv2_layers(n, 224))
