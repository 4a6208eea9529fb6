#!/usr/bin/python3
"""make_tsm_fixtures.py — the PyTorch reference fixture of the Uni-AdaFocus-TSM test group
(tests/test_tsm_variant.c, impl/uniadafocus_tsm.c).

A small reference of the variant written here from the paper notes (research/paper.md §3.2,
§3.3, §3.8) and the official module definitions (TSN with a MobileNetV2-TSM glance network and a
ResNet-50-TSM local network, avg consensus, the two TSN heads new_fc / new_new_fc, a spatial policy
whose last conv spans the whole glance sequence, the temporal policy, quantile frame sampling, the
deformable patch crop): the TSM shift, the tonylins-layout MobileNetV2 and the forward pass are this
file's own; the ResNet layout is torchvision's (through make_fixtures.WidthResNet, the backbone
tests' helper). Random weights, random batch-norm statistics, eval mode, at a tiny size:

    B 2 videos, T 6 candidates, G 3 glance frames, K 2 patches, S 64, P 32, boxes 96·64/224 … 64 px,
    MobileNetV2 width 0.1, ResNet-50 base width 4, spatial hidden 8, temporal hidden 4, C 5.

Writes tests/fixtures/uniadafocus_tsm_small.safetensors (< 1 MB):
  weights.<key>   every parameter and buffer under the official state_dict keys (the TemporalShift
                  wrapper's ".net" included; num_batches_tracked left out); F16 to stay small (the C
                  loader converts; the reference computes with the rounded values)
  video           (B, T, 3, S, S) F16
  glance_idx, focus_idx            (B, G), (B, K) I64
  weights_T       (B, G) the temporal policy's w_T
  action          (B, 4) the spatial policy's box action
  glance_avg, glance_final, local_final, logit   (B, C)
  exit_logits     (B, 2, C): [glance avg, glance final + local final]
Expectations are computed in float64 from the same (rounded) weights; the file is written only if
PyTorch's float32 pass picks the same frames and agrees to CONDITIONING.

Run with Debian's PyTorch: /usr/bin/python3 scripts/make_tsm_fixtures.py [OUT_DIR]
"""
import json
import math
import os
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import WidthResNet  # noqa: E402  (torchvision's ResNet with a base width)
from torchvision.models.resnet import Bottleneck  # noqa: E402

SEED = 6
CONDITIONING = 5e-5
B, T, G, K, S, P, C = 2, 6, 3, 2, 64, 32, 5
BOX_MIN, BOX_MAX = 96.0 * S / 224.0, float(S)
WIDTH, LOCAL_BASE, SPATIAL_HIDDEN, TEMPORAL_HIDDEN, SHIFT_DIV = 0.1, 4, 8, 4, 8
DTYPES = {torch.float32: ("F32", 4), torch.float16: ("F16", 2), torch.int64: ("I64", 8)}


def write_safetensors(path, tensors, metadata):
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


# ---- the TSM shift -------------------------------------------------------------------------------

def shift(x, n_segment, fold_div):
    """(N·T, C, H, W): channels [0, f) take the next frame's values, [f, 2f) the previous frame's,
    zeros where there is none; f = C // fold_div."""
    nt, c, h, w = x.shape
    v = x.reshape(nt // n_segment, n_segment, c, h, w)
    f = c // fold_div
    out = torch.zeros_like(v)
    out[:, :-1, :f] = v[:, 1:, :f]
    out[:, 1:, f:2 * f] = v[:, :-1, f:2 * f]
    out[:, :, 2 * f:] = v[:, :, 2 * f:]
    return out.reshape(nt, c, h, w)


class Shift(nn.Module):
    """The TemporalShift wrapper: its attribute `net` is what puts ".net" into the official keys."""

    def __init__(self, net, n_segment, fold_div):
        super().__init__()
        self.net, self.n_segment, self.fold_div = net, n_segment, fold_div

    def forward(self, x):
        return self.net(shift(x, self.n_segment, self.fold_div))


# ---- MobileNetV2, the official (tonylins) layout -------------------------------------------------

def conv_bn_relu6(cin, cout, k, stride, groups=1):
    return [nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False), nn.BatchNorm2d(cout),
            nn.ReLU6(inplace=False)]


class Inverted(nn.Module):
    def __init__(self, cin, cout, stride, t):
        super().__init__()
        hidden = cin * t
        self.residual = stride == 1 and cin == cout
        layers = [] if t == 1 else conv_bn_relu6(cin, hidden, 1, 1)
        layers += conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden)
        layers += [nn.Conv2d(hidden, cout, 1, 1, 0, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)
        self.expand = t != 1

    def forward(self, x):
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileNetV2(nn.Module):
    """Width rule of the official module: stem 32, t = 1 blocks unscaled, the others rounded up to
    a multiple of 8, last width 1280 (width <= 1)."""

    SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                (6, 320, 1, 1)]

    def __init__(self, width):
        super().__init__()
        feats = [nn.Sequential(*conv_bn_relu6(3, 32, 3, 2))]
        cin = 32
        for t, c, n, s in self.SETTINGS:
            cout = int(math.ceil(c * width / 8.0) * 8) if t > 1 else c
            for i in range(n):
                feats.append(Inverted(cin, cout, s if i == 0 else 1, t))
                cin = cout
        feats.append(nn.Sequential(*conv_bn_relu6(cin, 1280, 1, 1)))
        self.features = nn.Sequential(*feats)

    def add_shift(self, n_segment, fold_div):
        """The TSM placement: the first conv of every block with an expansion layer and a residual."""
        for m in self.features:
            if isinstance(m, Inverted) and m.expand and m.residual:
                m.conv[0] = Shift(m.conv[0], n_segment, fold_div)


def add_shift_resnet(r, n_segment, fold_div):
    """blockres: every bottleneck's conv1 (ResNet-50 has fewer than 23 blocks in layer3)."""
    for layer in (r.layer1, r.layer2, r.layer3, r.layer4):
        for block in layer:
            block.conv1 = Shift(block.conv1, n_segment, fold_div)


def run_resnet(r, x):
    h = r.maxpool(r.relu(r.bn1(r.conv1(x))))
    return r.layer4(r.layer3(r.layer2(r.layer1(h))))


# ---- the variant ---------------------------------------------------------------------------------

class TSN(nn.Module):
    """A TSN wrapper's parameters: base_model and the two heads (dropout is identity in eval)."""

    def __init__(self, base, dim):
        super().__init__()
        self.base_model = base
        self.new_fc = nn.Linear(dim, C)
        self.new_new_fc = nn.Linear(dim, C)


class SpatialPolicy(nn.Module):
    def __init__(self, dim):
        super().__init__()
        h = SPATIAL_HIDDEN
        side = S // 32
        self.encoder = nn.Sequential(
            nn.Conv3d(dim, h, 1, bias=False), nn.BatchNorm3d(h), nn.ReLU(),
            nn.Conv3d(h, h, 3, padding=1, bias=False), nn.BatchNorm3d(h), nn.ReLU(),
            nn.Conv3d(h, h, 3, padding=1, bias=False), nn.BatchNorm3d(h), nn.ReLU(),
            nn.Conv3d(h, 4, (G, side, side), bias=False), nn.Sigmoid())

    def forward(self, maps):  # (B·G, D, h, w) → (B, 4): one action per video
        n, d, hh, ww = maps.shape
        x = maps.reshape(n // G, G, d, hh, ww).permute(0, 2, 1, 3, 4)
        return self.encoder(x).reshape(n // G, 4)


class TemporalPolicy(nn.Module):
    def __init__(self, dim):
        super().__init__()
        h = TEMPORAL_HIDDEN
        self.Tconv = nn.Sequential(
            nn.Conv2d(dim, h, (3, 1), padding=(1, 0), bias=False), nn.BatchNorm2d(h), nn.ReLU(),
            nn.Conv2d(h, h, (3, 1), padding=(1, 0), bias=False), nn.BatchNorm2d(h), nn.ReLU(),
            nn.Conv2d(h, 1, 1, bias=False))

    def forward(self, feat):  # (B·G, D) → w_T (B, G), temperature 1
        x = feat.reshape(-1, G, feat.shape[1]).permute(0, 2, 1).unsqueeze(-1)
        return torch.softmax(self.Tconv(x).flatten(1), dim=1)


class UniAdaFocusTSM(nn.Module):
    def __init__(self):
        super().__init__()
        mnv2 = MobileNetV2(WIDTH)
        mnv2.add_shift(G, SHIFT_DIV)
        self.global_CNN = TSN(mnv2, 1280)
        r50 = WidthResNet(Bottleneck, [3, 4, 6, 3], base_width=LOCAL_BASE, num_classes=1)
        del r50.fc  # TSN replaces it by Dropout: no keys
        add_shift_resnet(r50, K, SHIFT_DIV)
        self.local_CNN = TSN(r50, LOCAL_BASE * 8 * 4)
        self.aux_fc = nn.Linear(1280, C)
        self.spatial_policy = SpatialPolicy(1280)
        self.temporal_policy = TemporalPolicy(1280)


def quantile_indices(w):
    """The official policy_sample_indices at test, float32 like there: w (B, G) → (B, K)."""
    w = w.float()
    c = torch.cat([torch.zeros(w.shape[0], 1), w.cumsum(dim=1)], dim=1)
    c[:, -1] = 1.0
    u = ((torch.arange(K).float() + 0.5) / K).repeat(w.shape[0], 1)
    first = (c.unsqueeze(2) >= u.unsqueeze(1)).max(dim=1)[1] - 1
    first = first.clamp(0, G - 1)
    x1, x2 = first / G, (first + 1) / G
    y1, y2 = c.gather(1, first), c.gather(1, first + 1)
    x = (x2 * (u - y1) - x1 * (u - y2)) / (y2 - y1)
    idx = torch.floor(x * T).long()
    for i in range(1, K):
        idx[:, i] = torch.where(idx[:, i] > idx[:, i - 1], idx[:, i], idx[:, i - 1] + 1)
    lim = (T - K + torch.arange(K)).unsqueeze(0)
    return torch.where(idx > lim, lim, idx)


def crop(frames, a):
    """frames (N, 3, S, S), a (N, 4) → (N, 3, P, P): the box s_min + a·(s_max − s_min) px per axis,
    top-left a_{y,x}·(S − side), resized to P×P by affine_grid + grid_sample (align_corners off)."""
    side = BOX_MIN + a[:, 2:4] * (BOX_MAX - BOX_MIN)  # (h, w)
    y1 = a[:, 0] * (S - side[:, 0])
    x1 = a[:, 1] * (S - side[:, 1])
    theta = torch.zeros(a.shape[0], 2, 3, dtype=a.dtype)
    theta[:, 0, 0] = side[:, 1] / S
    theta[:, 1, 1] = side[:, 0] / S
    theta[:, 0, 2] = -1 + (2 * x1 + side[:, 1]) / S
    theta[:, 1, 2] = -1 + (2 * y1 + side[:, 0]) / S
    grid = F.affine_grid(theta, [a.shape[0], 3, P, P], align_corners=False)
    return F.grid_sample(frames, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def forward(model, video, focus_idx=None):
    """Eval forward; focus_idx given → use it (the float64 pass uses the float32 pass's frames)."""
    gidx = torch.tensor([[(2 * j + 1) * T // (2 * G) for j in range(G)]] * B)
    frames = video[torch.arange(B).unsqueeze(1), gidx].reshape(B * G, 3, S, S)
    gc = model.global_CNN
    maps = gc.base_model.features(frames)
    feat = maps.mean(dim=(2, 3))
    glance_final = gc.new_fc(feat).reshape(B, G, C).mean(1)
    glance_avg = gc.new_new_fc(feat).reshape(B, G, C).mean(1)
    w = model.temporal_policy(feat)
    action = model.spatial_policy(maps)
    if focus_idx is None:
        focus_idx = quantile_indices(w)
    ff = video[torch.arange(B).unsqueeze(1), focus_idx].reshape(B * K, 3, S, S)
    patches = crop(ff, action.repeat_interleave(K, dim=0))
    lc = model.local_CNN
    lf = run_resnet(lc.base_model, patches).mean(dim=(2, 3))
    local_final = lc.new_fc(lf).reshape(B, K, C).mean(1)
    logit = glance_final + local_final
    return dict(glance_idx=gidx, focus_idx=focus_idx, weights_T=w, action=action, glance_avg=glance_avg,
                glance_final=glance_final, local_final=local_final, logit=logit,
                exit_logits=torch.stack([glance_avg, logit], dim=1))


def randomise(model, gen):
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d)):
            c = m.num_features
            m.weight.data = torch.empty(c).uniform_(0.5, 1.5, generator=gen)
            m.bias.data = torch.empty(c).uniform_(-0.2, 0.2, generator=gen)
            m.running_mean.data = torch.empty(c).normal_(0.0, 0.2, generator=gen)
            m.running_var.data = torch.empty(c).uniform_(0.5, 2.0, generator=gen)
        elif isinstance(m, (nn.Conv2d, nn.Conv3d, nn.Linear)):
            fan_in = m.weight[0].numel()
            m.weight.data = torch.empty(m.weight.shape).uniform_(-1, 1, generator=gen) * math.sqrt(4.5 / fan_in)  # between LeCun and He: the signal survives the ReLUs without growing
            if m.bias is not None:
                m.bias.data = torch.empty(m.bias.shape).uniform_(-0.1, 0.1, generator=gen)
    # a peaked temporal distribution, so the sampled frames differ between the videos
    model.temporal_policy.Tconv[6].weight.data *= 3.0
    # round every tensor to fp16 (what the file stores) so both passes use the stored values
    for t in list(model.parameters()) + list(model.buffers()):
        if t.dtype == torch.float32:
            t.data = t.data.half().float()


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures")
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    torch.set_num_threads(1)
    model = UniAdaFocusTSM()
    randomise(model, gen)
    model.eval()
    # per-frame offsets make the frames (and so the videos' temporal weights) differ
    video = torch.empty(B, T, 3, S, S).uniform_(-1.0, 1.0, generator=gen)
    video = (video + torch.empty(B, T, 1, 1, 1).normal_(0.0, 1.0, generator=gen)).half().float()
    with torch.no_grad():
        f32 = forward(model, video)
        model64 = UniAdaFocusTSM()
        model64.load_state_dict(model.state_dict())
        model64.double().eval()
        f64 = forward(model64, video.double(), f32["focus_idx"])
    if not torch.equal(quantile_indices(f64["weights_T"]), f32["focus_idx"]):
        sys.exit("make_tsm_fixtures.py: float32 and float64 pick different focus frames; change SEED")
    meta = {"B": B, "T": T, "G": G, "K": K, "S": S, "P": P, "C": C, "box_min": BOX_MIN, "box_max": BOX_MAX,
            "glance_width": WIDTH, "local_base_width": LOCAL_BASE, "spatial_hidden": SPATIAL_HIDDEN,
            "temporal_hidden": TEMPORAL_HIDDEN, "shift_div": SHIFT_DIV, "torch": torch.__version__}
    tensors = {}
    for name in ("weights_T", "action", "glance_avg", "glance_final", "local_final", "logit", "exit_logits"):
        want = f64[name]
        err = ((f32[name].double() - want).abs() / (want.abs() + 1e-3 * want.abs().max())).max().item()
        meta["torch_fp32_err." + name] = "%.3g" % err
        if err > CONDITIONING:
            sys.exit("make_tsm_fixtures.py: float32 %s is %.3g from float64; change SEED" % (name, err))
        tensors[name] = want.float()
    tensors["glance_idx"] = f32["glance_idx"].long()
    tensors["focus_idx"] = f32["focus_idx"].long()
    tensors["video"] = video.half()
    for k, v in model.state_dict().items():
        if k.endswith("num_batches_tracked"):
            continue
        tensors["weights." + k] = v.half()  # the official keys, TemporalShift's ".net" included
    path = os.path.join(out_dir, "uniadafocus_tsm_small.safetensors")
    size = write_safetensors(path, tensors, meta)
    print("wrote %s (%d bytes); focus %s; fp32 errors %s" % (path, size, f32["focus_idx"].tolist(),
          {k: v for k, v in meta.items() if k.startswith("torch_fp32")}))
    if size >= 1 << 20:
        sys.exit("make_tsm_fixtures.py: %s is %d bytes (keep fixtures under 1 MB)" % (path, size))


if __name__ == "__main__":
    main()
