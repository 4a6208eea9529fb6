#!/usr/bin/python3
"""parity_official.py — focusbench's Uni-AdaFocus against the official PyTorch code, on the same weights and clip.

    scripts/parity_official.py --official PATH [--bin build/focusbench] [--preset actnet-p128] [--batch 2]

PATH is a checkout of LeapLabTHU/Uni-AdaFocus (never committed here): either the repository root
or its "Uni-AdaFocus with Experiments on ActivityNet, FCVID and Mini-Kinetics" folder. The script

  1. builds the official AdaFocus model (models/uni_adafocus.py) at the preset's full size on the
     CPU with random weights: PyTorch's initialisation, batch-norm affine parameters perturbed, and
     running statistics calibrated on the clip (one training-mode pass with momentum 1), so that
     every layer runs in a realistic range;
  2. writes its state_dict and a clip (B x T x 3 x S x S, smooth random frames) as safetensors
     (written here with struct + json; no safetensors package needed);
  3. runs the official eval-mode forward, recording what it decides through hooks (glance
     actions, temporal weights, focus indices, the patch actions);
  4. runs `focusbench infer --preset P --ckpt W --input X --dump OUT --dump-features`;
  5. compares, in two stages, and prints a PASS/FAIL table:
     end to end (each code decides on its own):
       focus_indices   identical (a flip counts only where the official position x·T is within
                       1e-4 of an integer: a rounding tie is reported, not failed)
       temporal weights and pooled glance features within 1e-3 relative
       glance actions, boxes, exit logits: reported ("info") with the fp32 floor they sit on —
         the glance actions of BOTH codes are ~1e-5 from a float64 run of the same glance stage
         (printed), which the 128 px box scale turns into ~1e-3 px, and which a random ResNet-50
         amplifies in the exit logits; no fp32 implementation can meet ±1e-4 px end to end
     replay (the official forward given focusbench's glance actions and focus indices, through
     hooks, so the interpolation, the crop, the local CNN and the classifier are compared on the
     same decisions):
       patch_boxes     within 1e-4 px of the official boxes (from the actions the official crop used)
       focus actions   the G → T interpolation, within 1e-6
       exit_logits     within 1e-3 relative (each video's logit vector at each exit: ||diff|| / ||official||)
       and the local features, step logits and prediction within 1e-3 relative.
Exit status 0 when everything passes, 1 on a mismatch, 2 on usage or setup errors.

The official code is imported as it is and never modified. Shims applied at run time: the
backbone constructors are called with pretrained=False (the official ones load an ImageNet file
or download one), and if PIL is missing, ops.transforms is replaced by a stub (only its
augmentation classes are referenced, at training time).

Needs Debian's PyTorch (python3-torch 1.13): run with /usr/bin/python3.
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
import types

try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as e:  # pragma: no cover
    sys.stderr.write("parity_official.py: needs PyTorch and numpy (Debian: python3-torch); run with /usr/bin/python3: %s\n" % e)
    sys.exit(2)

SUBDIR = "Uni-AdaFocus with Experiments on ActivityNet, FCVID and Mini-Kinetics"

# The official argparse settings of each preset (README commands): only what AdaFocus.__init__ reads.
PRESETS = {
    "actnet-p96": dict(dataset="actnet", num_classes=200, patch_size=96, fc_dropout=0.2),
    "actnet-p128": dict(dataset="actnet", num_classes=200, patch_size=128, fc_dropout=0.2),
    "actnet-p160": dict(dataset="actnet", num_classes=200, patch_size=160, fc_dropout=0.2),
    "actnet-p192": dict(dataset="actnet", num_classes=200, patch_size=192, fc_dropout=0.2),
    "fcvid-p128": dict(dataset="fcvid", num_classes=239, patch_size=128, fc_dropout=0.2),
    "minik-p128": dict(dataset="minik", num_classes=200, patch_size=128, fc_dropout=0.1),
}

BOX_TOL_PX = 1e-4
EXIT_REL_TOL = 1e-3
DIAG_REL_TOL = 1e-3


class SetupError(Exception):
    pass


# ---- safetensors (struct + json) -------------------------------------------------------------

ST_DTYPES = {torch.float32: ("F32", "<f4", 4), torch.int64: ("I64", "<i8", 8)}
NP_OF = {"F32": "<f4", "I64": "<i8", "I32": "<i4", "F16": "<f2", "F64": "<f8"}


def write_safetensors(path, tensors, metadata=None):
    """tensors: {name: torch tensor (f32 or i64)}; atomic write; sorted by element size then name."""
    names = sorted(tensors, key=lambda n: (-ST_DTYPES[tensors[n].dtype][2], n))
    header, blobs, offset = {}, [], 0
    for name in names:
        t = tensors[name].detach().contiguous().cpu()
        tag, npd, _ = ST_DTYPES[t.dtype]
        blob = t.numpy().astype(npd, copy=False).tobytes()
        header[name] = {"dtype": tag, "shape": list(t.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
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


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        arr = np.frombuffer(data[base + b:base + end], dtype=NP_OF[e["dtype"]]).reshape(e["shape"])
        out[name] = arr.copy()
    return out


# ---- the official model --------------------------------------------------------------------------

def import_official(path):
    cand = [path, os.path.join(path, SUBDIR)]
    root = next((c for c in cand if os.path.isfile(os.path.join(c, "models", "uni_adafocus.py"))), None)
    if root is None:
        raise SetupError("no models/uni_adafocus.py under %s or %s/%s (give the official checkout)" % (path, path, SUBDIR))
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
    # The official constructors load ImageNet weights (a file / a download): random weights here.
    ua.mobilenet_v2 = lambda pretrained=True: mn.mobilenet_v2(pretrained=False)
    ua.resnet50 = lambda pretrained=True, **kw: rn.resnet50(pretrained=False, **kw)
    return root, ua


def build_official(ua, preset, batch):
    p = PRESETS[preset]
    args = argparse.Namespace(
        num_segments=48, num_glance_segments=16, num_focus_segments=16, num_classes=p["num_classes"],
        dataset=p["dataset"], input_size=224, batch_size=batch, patch_size=p["patch_size"], glance_arch="mbv2",
        device=torch.device("cpu"), fc_dropout=p["fc_dropout"], dropout=0.2, stn_hidden_dim=128,
        temporal_hidden_dim=64, temperature=1.0)
    return ua.AdaFocus(args), args


def smooth_clip(gen, B, T, S):
    """Frames with structure at several scales (bilinear-upsampled noise plus fine noise)."""
    coarse = torch.randn(B * T, 3, S // 8, S // 8, generator=gen)
    x = F.interpolate(coarse, size=(S, S), mode="bilinear", align_corners=False)
    x = x + 0.2 * torch.randn(B * T, 3, S, S, generator=gen)
    return x.view(B, T, 3, S, S).contiguous()


def randomise_and_calibrate(model, clip, gen):
    """Perturb every batch norm's affine parameters, then set its running statistics to the batch
    statistics of one training-mode pass over the clip (momentum 1)."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    with torch.no_grad():
        for m in bns:
            m.weight.copy_(0.75 + 0.5 * torch.rand(m.weight.shape, generator=gen))
            m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))
            m.momentum = 1.0
        model.train()
        model(clip)
        for m in bns:
            m.momentum = 0.1
    model.eval()


def run_official(model, ua, clip, replay=None):
    """Eval forward with hooks; returns (outputs, what it decided and computed). replay =
    (glance_actions (B·G, 4), focus indices (B, F)) substitutes focusbench's decisions for the
    spatial policy's output and the sampler's choice, so everything downstream of them is compared
    on identical inputs."""
    rec = {}

    def keep(name, fn):
        def hook(module, inputs, output):  # returns None: the module's output is left alone
            if name not in rec:  # the first call (the spatial policy runs twice per forward)
                rec[name] = fn(output).detach().clone()
        return hook

    hooks = [
        model.spatial_policy.register_forward_hook(keep("glance_actions", lambda o: o)),
        model.temporal_policy.register_forward_hook(keep("weights", lambda o: o[1])),
        model.global_CNN.features.register_forward_hook(keep("glance_maps", lambda o: o)),
        model.local_CNN.avgpool.register_forward_hook(keep("local_pooled", lambda o: o.flatten(1))),
    ]
    if replay is not None:  # a forward hook's return value replaces the module's output
        hooks.append(model.spatial_policy.register_forward_hook(lambda m, i, o: replay[0].to(o.dtype).clone()))
    orig_sample, orig_crop = ua.policy_sample_indices, ua.get_patch_grid_scalexy

    def sample_hook(weights, num_segments, *a, **kw):
        out = orig_sample(weights, num_segments, *a, **kw)
        if replay is not None:
            idx = replay[1]
            out = (idx + torch.arange(idx.shape[0]).unsqueeze(1) * num_segments).view(-1).to(out.dtype)
        rec["focus_flat"] = out.detach().clone()
        return out

    def crop_hook(input_frames, actions, patch_size, image_size, input_patch_size):
        if image_size == clip.shape[-1]:  # the pixel crop (the other call crops the 7x7 feature maps)
            rec["patch_actions"] = actions.detach().clone()
        return orig_crop(input_frames, actions, patch_size, image_size, input_patch_size)

    ua.policy_sample_indices, ua.get_patch_grid_scalexy = sample_hook, crop_hook
    try:
        with torch.no_grad():
            out = model(clip)
    finally:
        ua.policy_sample_indices, ua.get_patch_grid_scalexy = orig_sample, orig_crop
        for h in hooks:
            h.remove()
    return out, rec


def boxes_from_actions(a, S, P, smin=96.0, smax=224.0):
    """DESIGN §3 item 6 from the actions the official crop received: (y1, x1, h, w) in pixels (float64)."""
    a = a.double()
    h = smin + a[:, 2] * (smax - smin)
    w = smin + a[:, 3] * (smax - smin)
    return torch.stack([a[:, 0] * (S - h), a[:, 1] * (S - w), h, w], dim=1)


def quantile_margins(weights, T, F_):
    """Distance of each official focus position x·T from the nearest integer (float64 re-derivation
    of DESIGN §3 item 5): a flipped floor there is a rounding tie, not a bug."""
    w = weights.double().numpy()
    B, G = w.shape
    out = np.zeros((B, F_))
    for b in range(B):
        c = np.concatenate([[0.0], np.cumsum(w[b])])
        c[-1] = 1.0
        for i in range(F_):
            u = (i + 0.5) / F_
            j = int(np.argmax(c >= u))
            k = min(max(j, 1), G) - 1
            x = (k + (u - c[k]) / (c[k + 1] - c[k])) / G
            out[b, i] = abs(x * T - round(x * T))
    return out


def glance_reference(model, clip, G, fb_actions, off_actions):
    """The glance stage (MobileNetV2 + spatial policy) in float64 on the same frames: how far each
    fp32 implementation's actions are from it (max abs)."""
    import copy
    B, T = clip.shape[:2]
    idx = (torch.arange(T)[1::T // G].repeat(B, 1) + torch.arange(B).unsqueeze(1) * T).view(-1)
    frames = clip.reshape(-1, *clip.shape[2:])[idx].double()
    with torch.no_grad():
        cnn, pol = copy.deepcopy(model.global_CNN).double(), copy.deepcopy(model.spatial_policy).double()
        ref = pol(cnn.get_featmap(frames)[0]).view(B, G, 4).numpy()
    return float(np.abs(off_actions - ref).max()), float(np.abs(fb_actions - ref).max())


# ---- comparison ----------------------------------------------------------------------------------

def rel_err(got, want):
    """Relative error of vectors: max over rows (the last dim is the vector: a video's logits at one
    exit, a frame's pooled feature) of ||got - want||_2 / ||want||_2."""
    got = np.asarray(got, np.float64).reshape(-1, np.shape(want)[-1])
    want = np.asarray(want, np.float64).reshape(-1, np.shape(want)[-1])
    num = np.linalg.norm(got - want, axis=1)
    den = np.maximum(np.linalg.norm(want, axis=1), 1e-30)
    return float((num / den).max())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--official", required=True, help="checkout of LeapLabTHU/Uni-AdaFocus (root or the ActivityNet folder)")
    ap.add_argument("--bin", default=os.environ.get("FOCUSBENCH_BIN", "build/focusbench"), help="the focusbench binary")
    ap.add_argument("--preset", default="actnet-p128", choices=sorted(PRESETS))
    ap.add_argument("--batch", type=int, default=2, help="videos in the clip (default 2)")
    ap.add_argument("--seed", type=int, default=20241217)
    ap.add_argument("--workdir", default=None, help="keep the exported files here (default: a temporary directory)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: PyTorch's default)")
    args = ap.parse_args()
    if args.batch < 1:
        ap.error("--batch must be >= 1")
    if not os.access(args.bin, os.X_OK):
        sys.stderr.write("parity_official.py: %s is not an executable focusbench (build it with make, or give --bin)\n" % args.bin)
        return 2
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    try:
        root, ua = import_official(os.path.abspath(args.official))
    except (SetupError, ImportError) as e:
        sys.stderr.write("parity_official.py: cannot import the official model: %s\n" % e)
        return 2
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    t0 = time.time()
    model, oargs = build_official(ua, args.preset, args.batch)
    T, G, F_, S, P, C = oargs.num_segments, oargs.num_glance_segments, oargs.num_focus_segments, 224, oargs.patch_size, oargs.num_classes
    clip = smooth_clip(gen, args.batch, T, S)
    randomise_and_calibrate(model, clip, gen)
    out, rec = run_official(model, ua, clip)
    t_official = time.time() - t0
    cat_logits = out[0].view(args.batch, G + F_, C)
    exit_logits = cat_logits[:, -(F_ + 1):]
    focus = (rec["focus_flat"].view(args.batch, F_) - torch.arange(args.batch).unsqueeze(1) * T)
    boxes = boxes_from_actions(rec["patch_actions"], S, P).view(args.batch, F_, 4)
    glance_actions = rec["glance_actions"].view(args.batch, G, 4)
    glance_pooled = rec["glance_maps"].mean([2, 3]).view(args.batch, G, -1)
    local_pooled = rec["local_pooled"].view(args.batch, F_, -1)

    tmp = None
    workdir = args.workdir
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="uaf_parity_")
        workdir = tmp.name
    os.makedirs(workdir, exist_ok=True)
    wpath, xpath, opath = (os.path.join(workdir, n) for n in ("weights.safetensors", "clip.safetensors", "out.safetensors"))
    write_safetensors(wpath, dict(model.state_dict()), {"source": "official AdaFocus, random init", "preset": args.preset})
    write_safetensors(xpath, {"video": clip})
    cmd = [args.bin, "infer", "--preset", args.preset, "--ckpt", wpath, "--input", xpath, "--dump", opath, "--dump-features"]
    t1 = time.time()
    run = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t_fb = time.time() - t1
    if run.returncode != 0:
        sys.stderr.write("parity_official.py: focusbench infer failed (%d): %s%s\n" % (run.returncode, run.stdout, run.stderr))
        return 1
    got = read_safetensors(opath)

    B = args.batch
    rows = []  # (section, check, value, bound, status, note); status PASS / FAIL / info

    # End to end: both implementations decide on their own.
    fi = got["focus_indices"]
    diff = fi != focus.numpy()
    ok = not diff.any()
    note = "identical, %d videos x %d frames" % fi.shape
    if not ok:
        ties = diff & (quantile_margins(rec["weights"], T, F_) < 1e-4)
        ok = not (diff & ~ties).any()
        note = "%d differ (%d within a rounding tie of the official position)" % (diff.sum(), ties.sum())
    rows.append(("end to end", "focus_indices", "%d diff" % int(diff.sum()), "0", "PASS" if ok else "FAIL", note))
    ga_err = float(np.abs(got["glance_actions"] - glance_actions.numpy()).max())
    ref_off, ref_fb = glance_reference(model, clip, G, got["glance_actions"], glance_actions.numpy())
    rows.append(("end to end", "glance_actions", "%.2g" % ga_err, "-", "info",
                 "max abs diff; vs an fp64 run: official %.2g, focusbench %.2g" % (ref_off, ref_fb)))
    rows.append(("end to end", "temporal_weights", "%.2g" % rel_err(got["temporal_weights"], rec["weights"].numpy()),
                 "%.0e" % DIAG_REL_TOL, "PASS" if rel_err(got["temporal_weights"], rec["weights"].numpy()) <= DIAG_REL_TOL
                 else "FAIL", "relative"))
    e = rel_err(got["glance_pooled"], glance_pooled.numpy())
    rows.append(("end to end", "glance_pooled", "%.2g" % e, "%.0e" % DIAG_REL_TOL, "PASS" if e <= DIAG_REL_TOL else "FAIL",
                 "relative: MobileNetV2 features"))
    if ok:
        box_e2e = float(np.abs(got["patch_boxes"].astype(np.float64) - boxes.numpy()).max())
        rows.append(("end to end", "patch_boxes (px)", "%.2g" % box_e2e, "-", "info",
                     "= 128 px x the glance-action difference (fp32 noise of both codes)"))
    rows.append(("end to end", "exit_logits", "%.2g" % rel_err(got["exit_logits"], exit_logits.numpy()), "-", "info",
                 "relative; the random ResNet-50 amplifies the patch difference"))

    # Replay: the official forward on focusbench's decisions (glance actions, focus indices).
    fb_actions = torch.from_numpy(got["glance_actions"]).reshape(B * G, 4)
    out_r, rec_r = run_official(model, ua, clip, replay=(fb_actions, torch.from_numpy(fi)))
    boxes_r = boxes_from_actions(rec_r["patch_actions"], S, P).view(B, F_, 4).numpy()
    box_err = float(np.abs(got["patch_boxes"].astype(np.float64) - boxes_r).max())
    rows.append(("replay", "patch_boxes (px)", "%.2g" % box_err, "%.0e" % BOX_TOL_PX,
                 "PASS" if box_err <= BOX_TOL_PX else "FAIL", "max |focusbench - official| over y1, x1, h, w"))
    act_err = float(np.abs(got["actions"].reshape(B, T, 4)[np.arange(B)[:, None], fi] -
                           rec_r["patch_actions"].view(B, F_, 4).numpy()).max())
    rows.append(("replay", "focus actions", "%.2g" % act_err, "1e-06", "PASS" if act_err <= 1e-6 else "FAIL",
                 "interpolated G -> T, at the focus frames, max abs"))
    ex_r = out_r[0].view(B, G + F_, C)[:, -(F_ + 1):].numpy()
    e = rel_err(got["exit_logits"], ex_r)
    rows.append(("replay", "exit_logits", "%.2g" % e, "%.0e" % EXIT_REL_TOL, "PASS" if e <= EXIT_REL_TOL else "FAIL",
                 "B x %d x %d, relative" % (F_ + 1, C)))
    for name, g, w in (("local_pooled", got["local_pooled"], rec_r["local_pooled"].view(B, F_, -1).numpy()),
                       ("step_logits", got["step_logits"], out_r[0].view(B, G + F_, C).numpy()),
                       ("prediction", got["prediction"], out_r[1].numpy())):
        e = rel_err(g, w)
        rows.append(("replay", name, "%.2g" % e, "%.0e" % DIAG_REL_TOL, "PASS" if e <= DIAG_REL_TOL else "FAIL", "relative"))
    same_class = np.array_equal(got["prediction"].argmax(1), out_r[1].numpy().argmax(1))
    rows.append(("replay", "predicted class", "same" if same_class else "differs", "same",
                 "PASS" if same_class else "FAIL", "argmax of the last step"))

    print("Uni-AdaFocus parity: focusbench vs the official code (%s)" % root)
    print("preset %s: T %d, G %d, F %d, S %d, P %d, C %d; batch %d; seed %d; random weights, BN calibrated on the clip"
          % (args.preset, T, G, F_, S, P, C, args.batch, args.seed))
    print("official eval forward %.1f s (PyTorch %s, CPU); focusbench infer %.1f s" % (t_official, torch.__version__, t_fb))
    print("official focus indices: %s" % focus.tolist())
    print()
    print("end to end: each code decides on its own; replay: the official forward given focusbench's glance")
    print("actions and focus indices, so the crop, local CNN and classifier see the same decisions")
    print()
    print("%-11s %-18s %-9s %-7s %-6s %s" % ("stage", "check", "value", "bound", "result", "note"))
    print("-" * 100)
    for section, name, value, bound, status, note in rows:
        print("%-11s %-18s %-9s %-7s %-6s %s" % (section, name, value, bound, status, note))
    passed = all(r[4] != "FAIL" for r in rows)
    print("-" * 100)
    print("PARITY %s" % ("PASS" if passed else "FAIL"))
    if tmp is not None:
        tmp.cleanup()
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
