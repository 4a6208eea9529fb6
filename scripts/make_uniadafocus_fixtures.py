#!/usr/bin/python3
"""make_uniadafocus_fixtures.py — reference fixtures of Uni-AdaFocus's components from the official code.

    scripts/make_uniadafocus_fixtures.py --official PATH [--out tests/fixtures/uniadafocus]

PATH is a checkout of LeapLabTHU/Uni-AdaFocus (never committed): the repository root or its
"Uni-AdaFocus with Experiments on ActivityNet, FCVID and Mini-Kinetics" folder. The official
modules and functions (models/uni_adafocus.py) are imported as they are, built at small sizes
with random weights and non-trivial batch-norm statistics, and run; their inputs, weights and
outputs are written as small safetensors files that tests/test_uniadafocus.c reads:

  spatial_policy.safetensors   SpatialPolicy(D 16, hidden 8, G 4) on (B·G, 16, 7, 7) maps, B 2
                               (the official head's kernel is fixed at 1×7×7): eval actions; train
                               actions, updated running statistics, and the gradients of
                               Σ actions·R with respect to the maps and two weights
  temporal_policy.safetensors  TemporalPolicy(D 24, hidden 8, G 5, τ 0.7) on (B·G, 24), B 3: the
                               logits (Tconv output), w and w_T, eval and train
  sampler.safetensors          policy_sample_indices on sets of weights (uniform, peaked,
                               random, with empty bins) at (T, G, F) = (48, 16, 16), (12, 4, 6),
                               (20, 5, 20): test mode, and training mode with the random numbers
                               it drew (recorded by wrapping torch.rand_like)
  crop.safetensors             get_patch_grid_scalexy: a pixel crop (112×112 frames, P 32; the
                               official 96…224 px boxes overhang such a frame, so zero padding is
                               exercised) with actions at 0 and 1, and the spatial loss's feature
                               crop (7×7 maps, P 128 → 4×4, actions in [0.1, 0.9]): theta (recorded
                               from affine_grid), the patches, and for the feature crop the
                               gradients of Σ patches·R w.r.t. the maps and the actions
  interp.safetensors           F.interpolate(mode='linear', align_corners=False), the G → T
                               interpolation of the actions, at (16 → 48), (4 → 8), (5 → 20)
  classifier.safetensors       PoolingClassifier(D_g 4, D_l 6, G 2, F 3, C 3) with its hard-coded
                               MLP width 4096 narrowed to 16 at construction (a run-time shim of
                               nn.Linear's width and the MLP's default; the module is unchanged):
                               the 5 step logits and the prediction, eval and train (dropout 0)

Tensor names: "<group>.weights.<state_dict key>" for parameters, other names for inputs and
outputs; __metadata__ holds the sizes. Run with Debian's PyTorch (python3-torch 1.13):
/usr/bin/python3. The safetensors format is written with struct + json.
"""
import argparse
import json
import os
import struct
import sys
import types

import torch
import torch.nn as nn
import torch.nn.functional as F

SUBDIR = "Uni-AdaFocus with Experiments on ActivityNet, FCVID and Mini-Kinetics"
SEED = 20241217
DTYPES = {torch.float32: ("F32", 4), torch.int64: ("I64", 8)}


def write_safetensors(path, tensors, metadata):
    """{name: tensor} atomically: sorted by element size (largest first) then name; header padded to 8."""
    names = sorted(tensors, key=lambda n: (-DTYPES[tensors[n].dtype][1], n))
    header, blobs, offset = {}, [], 0
    for name in names:
        t = tensors[name].detach().contiguous().cpu()
        blob = t.numpy().tobytes()
        header[name] = {"dtype": DTYPES[t.dtype][0], "shape": list(t.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    tmp = path + ".tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(raw)))
            f.write(raw)
            for blob in blobs:
                f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return os.path.getsize(path)


def import_official(path):
    root = next((c for c in (path, os.path.join(path, SUBDIR))
                 if os.path.isfile(os.path.join(c, "models", "uni_adafocus.py"))), None)
    if root is None:
        sys.exit("make_uniadafocus_fixtures.py: no models/uni_adafocus.py under %s (give the official checkout)" % path)
    sys.path.insert(0, root)
    try:
        import PIL  # noqa: F401
    except ImportError:  # only the augmentation classes of ops.transforms are referenced
        stub = types.ModuleType("ops.transforms")
        stub.GroupMultiScaleCrop = stub.GroupRandomHorizontalFlip = object
        sys.modules["ops.transforms"] = stub
    import models.uni_adafocus as ua
    return ua


def randomise_bn(module, gen):
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=gen))
                m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=gen))
                m.running_mean.copy_(0.2 * torch.randn(m.running_mean.shape, generator=gen))
                m.running_var.copy_(0.5 + 1.5 * torch.rand(m.running_var.shape, generator=gen))


def weights(module, group):
    return {"%s.weights.%s" % (group, k): v.clone() for k, v in module.state_dict().items()}


def spatial_policy(ua, gen):
    # Expected values come from a float64 run of the official module on the same float32 weights
    # and inputs, so the test measures focusbench's fp32 error, not PyTorch's (a training-mode
    # gradient through three batch norms carries ~1e-4 of fp32 rounding in either code).
    D, H, G, B = 16, 8, 4, 2
    torch.manual_seed(SEED + 1)
    m = ua.SpatialPolicy(stn_feature_dim=D, hidden_dim=H, num_glance_segments=G)
    randomise_bn(m, gen)
    x = torch.randn(B * G, D, 7, 7, generator=gen)
    out = weights(m, "spatial")
    m = m.double()
    m.eval()
    with torch.no_grad():
        out["spatial.eval.actions"] = m(x.double()).float()
    m.train()
    xg = x.double().requires_grad_(True)
    a = m(xg)
    R = torch.randn(a.shape, generator=gen)
    (a * R.double()).sum().backward()
    out.update({"spatial.input": x, "spatial.train.actions": a.detach().float(), "spatial.train.R": R,
                "spatial.train.grad.input": xg.grad.float(),
                "spatial.train.grad.encoder.0.weight": m.encoder[0].weight.grad.float(),
                "spatial.train.grad.encoder.9.weight": m.encoder[9].weight.grad.float(),
                "spatial.train.grad.encoder.4.weight": m.encoder[4].weight.grad.float()})
    for k, v in m.state_dict().items():
        if "running" in k:
            out["spatial.train.state." + k] = v.clone().float()
    return out, {"spatial": "D=%d hidden=%d G=%d B=%d side=7; expected values from a float64 run" % (D, H, G, B)}


def temporal_policy(ua, gen):
    D, H, G, B, tau = 24, 8, 5, 3, 0.7
    torch.manual_seed(SEED + 2)
    m = ua.TemporalPolicy(input_dim=D, hidden_dim=H, num_glance_segments=G, temperature=tau, device="cpu")
    randomise_bn(m, gen)
    x = torch.randn(B * G, D, generator=gen)
    out = weights(m, "temporal")
    out["temporal.input"] = x
    logits = {}
    hook = m.Tconv.register_forward_hook(lambda mod, i, o: logits.__setitem__("v", o.detach().flatten(1).clone()))
    for mode in ("eval", "train"):
        m.train(mode == "train")
        with torch.no_grad():
            w, wT = m(x)
        out["temporal.%s.logits" % mode] = logits["v"]
        out["temporal.%s.weights" % mode] = w
        out["temporal.%s.weights_T" % mode] = wT
    hook.remove()
    for k, v in m.state_dict().items():
        if "running" in k:
            out["temporal.train.state." + k] = v.clone()
    return out, {"temporal": "D=%d hidden=%d G=%d B=%d tau=%g" % (D, H, G, B, tau)}


def sampler(ua, gen):
    out, meta = {}, {}
    cases = [(48, 16, 16), (12, 4, 6), (20, 5, 20)]
    for ci, (T, G, Fc) in enumerate(cases):
        rows = [torch.full((G,), 1.0 / G),                                 # uniform
                F.softmax(torch.tensor([0.0] * (G - 1) + [8.0]), 0),        # peaked at the end
                F.softmax(torch.tensor([6.0] + [0.0] * (G - 1)), 0)]        # peaked at the start
        for _ in range(3):
            rows.append(F.softmax(2.0 * torch.randn(G, generator=gen), 0))  # random
        empty = torch.rand(G, generator=gen)
        empty[1::2] = 0.0                                                   # empty bins
        rows.append(empty / empty.sum())
        w = torch.stack(rows).float()
        test = ua.policy_sample_indices(w, T, G, Fc, rand_sample=False).view(len(rows), Fc) \
            - torch.arange(len(rows)).unsqueeze(1) * T
        drawn = {}
        real_rand_like = torch.rand_like

        def recording_rand_like(t, *a, **kw):
            r = real_rand_like(t, *a, **kw)
            drawn["r"] = r.clone()
            return r

        torch.manual_seed(SEED + 10 + ci)
        torch.rand_like = recording_rand_like
        try:
            train = ua.policy_sample_indices(w, T, G, Fc, rand_sample=True).view(len(rows), Fc) \
                - torch.arange(len(rows)).unsqueeze(1) * T
        finally:
            torch.rand_like = real_rand_like
        p = "sampler.%d." % ci
        out.update({p + "weights": w, p + "test": test, p + "train": train, p + "train.rand": drawn["r"]})
        meta["sampler.%d" % ci] = "T=%d G=%d F=%d rows=%d" % (T, G, Fc, len(rows))
    meta["sampler.cases"] = str(len(cases))
    return out, meta


def crop(ua, gen):
    out, meta = {}, {}
    theta_seen = {}
    real_F = ua.F

    class RecordingF:  # forwards everything to torch.nn.functional, remembering affine_grid's theta
        def __getattr__(self, name):
            return getattr(real_F, name)

        @staticmethod
        def affine_grid(theta, *a, **kw):
            theta_seen["t"] = theta.detach().clone()
            return real_F.affine_grid(theta, *a, **kw)

    corners = torch.tensor([[0, 0, 0, 0], [1, 1, 1, 1], [1, 1, 0, 0], [0, 0, 1, 1], [0.5, 0.5, 0.5, 0.5],
                            [0.25, 0.8, 0.1, 0.9]], dtype=torch.float32)
    cases = {"pixel": dict(N=6, C=1, image=112, patch=32, in_patch=32),
             "feature": dict(N=6, C=8, image=7, patch=4, in_patch=128)}
    ua.F = RecordingF()
    try:
        for name, c in cases.items():
            frames = torch.randn(c["N"], c["C"], c["image"], c["image"], generator=gen)
            actions = corners.clone()
            if name == "feature":  # away from the corners, where the bilinear weights have kinks
                actions = 0.1 + 0.8 * torch.rand(c["N"], 4, generator=gen)
            fr = frames.clone().requires_grad_(True)
            ac = actions.clone().requires_grad_(True)
            patches = ua.get_patch_grid_scalexy(fr, ac, patch_size=c["patch"], image_size=c["image"],
                                                input_patch_size=c["in_patch"])
            R = torch.randn(patches.shape, generator=gen)
            (patches * R).sum().backward()
            p = "crop.%s." % name
            out.update({p + "frames": frames, p + "actions": actions, p + "theta": theta_seen["t"],
                        p + "patches": patches.detach()})
            if name == "feature":
                # Gradients only for the spatial loss's crop, the one that trains through θ (the
                # pixel crop's actions are detached in the model). The pixel case's limit actions
                # put samples exactly on pixel centres, where bilinear sampling has kinks and the
                # one-sided derivative depends on the last bit of the coordinate.
                out.update({p + "R": R, p + "grad.actions": ac.grad, p + "grad.frames": fr.grad})
            meta["crop.%s" % name] = "N=%(N)d C=%(C)d image=%(image)d patch=%(patch)d in_patch=%(in_patch)d" % c
    finally:
        ua.F = real_F
    return out, meta


def interp(gen):
    out, meta = {}, {}
    for i, (B, G, T) in enumerate([(2, 16, 48), (1, 4, 8), (1, 5, 20)]):
        x = torch.rand(B, 4, G, generator=gen)
        out["interp.%d.x" % i] = x
        out["interp.%d.y" % i] = F.interpolate(x, T, mode="linear", align_corners=False)
        meta["interp.%d" % i] = "B=%d G=%d T=%d" % (B, G, T)
    return out, meta


class NarrowNN:
    """torch.nn with the classifier's hard-coded width 4096 (and 2·4096 = 8192) replaced by W: the
    official PoolingClassifier at a fixture-sized width, everything else untouched."""

    def __init__(self, width):
        self.width = width

    def __getattr__(self, name):
        return getattr(nn, name)

    def Linear(self, i, o, *a, **kw):
        return nn.Linear({4096: self.width, 8192: 2 * self.width}.get(i, i), o, *a, **kw)


def classifier(ua, gen):
    Dg, Dl, W, G, Fc, C, B = 4, 6, 16, 2, 3, 3, 4
    torch.manual_seed(SEED + 3)
    real_nn, real_defaults = ua.nn, ua.MultiLayerPerceptron.__init__.__defaults__
    ua.nn, ua.MultiLayerPerceptron.__init__.__defaults__ = NarrowNN(W), (W,)
    try:
        m = ua.PoolingClassifier(global_feature_dim=Dg, local_feature_dim=Dl, num_glance_segments=G,
                                 num_focus_segments=Fc, num_classes=C, dropout=0.0, device="cpu")
    finally:
        ua.nn, ua.MultiLayerPerceptron.__init__.__defaults__ = real_nn, real_defaults
    randomise_bn(m, gen)
    x = torch.randn(B, G, Dg, generator=gen)
    y = torch.randn(B, Fc, Dl, generator=gen)
    out = weights(m, "classifier")
    out.update({"classifier.global": x.reshape(B * G, Dg), "classifier.local": y.reshape(B * Fc, Dl)})
    for mode in ("eval", "train"):
        m.train(mode == "train")
        with torch.no_grad():
            logits, last = m(x, y)
        out["classifier.%s.step_logits" % mode] = logits.view(B, G + Fc, C)
        out["classifier.%s.prediction" % mode] = last
    return out, {"classifier": "Dg=%d Dl=%d W=%d G=%d F=%d C=%d B=%d" % (Dg, Dl, W, G, Fc, C, B)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--official", required=True)
    ap.add_argument("--out", default="tests/fixtures/uniadafocus")
    args = ap.parse_args()
    ua = import_official(os.path.abspath(args.official))
    os.makedirs(args.out, exist_ok=True)
    gen = torch.Generator().manual_seed(SEED)
    jobs = [("spatial_policy", lambda: spatial_policy(ua, gen)), ("temporal_policy", lambda: temporal_policy(ua, gen)),
            ("sampler", lambda: sampler(ua, gen)), ("crop", lambda: crop(ua, gen)), ("interp", lambda: interp(gen)),
            ("classifier", lambda: classifier(ua, gen))]
    for name, job in jobs:
        tensors, meta = job()
        meta.update({"source": "LeapLabTHU/Uni-AdaFocus models/uni_adafocus.py", "torch": torch.__version__,
                     "seed": SEED})
        path = os.path.join(args.out, name + ".safetensors")
        size = write_safetensors(path, tensors, meta)
        print("wrote %s (%d tensors, %.1f KB)" % (path, len(tensors), size / 1024))


if __name__ == "__main__":
    main()
