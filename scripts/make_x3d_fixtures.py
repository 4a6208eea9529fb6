#!/usr/bin/env python3
"""make_x3d_fixtures.py — the X3D fixture of tests/test_x3d.c: tests/fixtures/x3d_small.safetensors.

A small PyTorch X3D written here from the X3D paper (Feichtenhofer, CVPR 2020) and the layout of
PySlowFast's X3D (the official Uni-AdaFocus-X3D code carries it in archs/x3d_video_model_builder.py
and slowfast/models/{stem,resnet,head}_helper.py, operators.SE): the same module names, so the
state_dict keys are PySlowFast's (s1.pathway0_stem.conv_xy.weight, s2.pathway0_res0.branch2.se.fc1.bias,
head.lin_5.weight, ...). No official code is imported or copied; only the structure is followed:

  stem      conv_xy 1x3x3 s(1,2,2) p(0,1,1), conv kx1x1 channel-wise p(k//2), bn, ReLU
  block     branch2: a 1x1x1, a_bn, ReLU, b 3x3x3 channel-wise stride (1,s,s) p1, b_bn,
            [se: every other block, index 0, 2, ...], swish, c 1x1x1, c_bn;
            branch1 (1x1x1 stride (1,s,s) + branch1_bn) when width or stride change; ReLU(sum)
  se        x * sigmoid(fc2(relu(fc1(mean_THW x)))), fc convs 1x1x1 with bias, width
            round_width(C, 1/16, min 8, divisor 8)
  head      conv_5 1x1x1, conv_5_bn, ReLU -> map; mean over THW; lin_5 1x1x1 (no bias), ReLU,
            [dropout], projection (linear)

The network (the "x3d-small" configuration of the test): width factor 2.0, depth factor 0.5,
bottleneck 2.25, dim_c1 4, dim_c5 32, 5 classes, stem temporal kernel 5, no dropout; input
(2, 3, 4, 32, 32). Parameters and BN statistics are random (not the PySlowFast init), so every
term matters. Written tensors:
  w.<key>                 every parameter and buffer (num_batches_tracked left out)
  x                       the input clip
  eval.logits / eval.features / eval.frame_features   eval-mode outputs (running statistics)
  train.logits            train-mode logits (batch statistics)
  r                       a fixed (2, 5) weight; grad.<key> = d sum(train.logits * r) / d param for
                          a few parameters (stem, a channel-wise conv, an SE fc, lin_5, projection)
  blk0.x / blk0.y         block s2.pathway0_res0 (projection shortcut, SE, stride 2) alone, eval
  blk1.x / blk1.y         block s4.pathway0_res1 (identity shortcut, no SE), eval

Run with /usr/bin/python3 (torch 1.13, CPU) from the repository root.
"""
import json
import math
import os
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = "tests/fixtures/x3d_small.safetensors"


def write_safetensors(path, tensors, metadata):
    names = sorted(tensors)
    header, blobs, offset = {}, [], 0
    for name in names:
        t = tensors[name].detach().contiguous().cpu().float()
        blob = t.numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(blob)]}
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


def round_width(width, mult, min_width=1, divisor=1):
    width *= mult
    out = max(min_width, int(width + divisor / 2) // divisor * divisor)
    if out < 0.9 * width:
        out += divisor
    return int(out)


class Stem(nn.Module):
    def __init__(self, cout, kt):
        super().__init__()
        self.conv_xy = nn.Conv3d(3, cout, (1, 3, 3), (1, 2, 2), (0, 1, 1), bias=False)
        self.conv = nn.Conv3d(cout, cout, (kt, 1, 1), 1, (kt // 2, 0, 0), groups=cout, bias=False)
        self.bn = nn.BatchNorm3d(cout)

    def forward(self, x):
        return F.relu(self.bn(self.conv(self.conv_xy(x))))


class SqueezeExcite(nn.Module):
    def __init__(self, c):
        super().__init__()
        r = round_width(c, 0.0625, 8, 8)
        self.fc1 = nn.Conv3d(c, r, 1, bias=True)
        self.fc2 = nn.Conv3d(r, c, 1, bias=True)

    def forward(self, x):
        s = x.mean(dim=(2, 3, 4), keepdim=True)
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(s))))


class Branch2(nn.Module):
    def __init__(self, cin, inner, cout, stride, se):
        super().__init__()
        self.a = nn.Conv3d(cin, inner, 1, bias=False)
        self.a_bn = nn.BatchNorm3d(inner)
        self.b = nn.Conv3d(inner, inner, 3, (1, stride, stride), 1, groups=inner, bias=False)
        self.b_bn = nn.BatchNorm3d(inner)
        self.se = SqueezeExcite(inner) if se else None
        self.c = nn.Conv3d(inner, cout, 1, bias=False)
        self.c_bn = nn.BatchNorm3d(cout)

    def forward(self, x):
        x = F.relu(self.a_bn(self.a(x)))
        x = self.b_bn(self.b(x))
        if self.se is not None:
            x = self.se(x)
        x = x * torch.sigmoid(x)  # swish
        return self.c_bn(self.c(x))


class Block(nn.Module):
    def __init__(self, cin, inner, cout, stride, se):
        super().__init__()
        if cin != cout or stride != 1:
            self.branch1 = nn.Conv3d(cin, cout, 1, (1, stride, stride), bias=False)
            self.branch1_bn = nn.BatchNorm3d(cout)
        self.branch2 = Branch2(cin, inner, cout, stride, se)

    def forward(self, x):
        f = self.branch2(x)
        sc = self.branch1_bn(self.branch1(x)) if hasattr(self, "branch1") else x
        return F.relu(sc + f)


class Stage(nn.Module):
    def __init__(self, n, cin, inner, cout):
        super().__init__()
        self.n = n
        for j in range(n):
            self.add_module("pathway0_res%d" % j, Block(cin if j == 0 else cout, inner, cout, 2 if j == 0 else 1,
                                                        j % 2 == 0))

    def forward(self, x):
        for j in range(self.n):
            x = getattr(self, "pathway0_res%d" % j)(x)
        return x


class Head(nn.Module):
    def __init__(self, cin, inner, c5, classes):
        super().__init__()
        self.conv_5 = nn.Conv3d(cin, inner, 1, bias=False)
        self.conv_5_bn = nn.BatchNorm3d(inner)
        self.lin_5 = nn.Conv3d(inner, c5, 1, bias=False)
        self.projection = nn.Linear(c5, classes)


class X3DSmall(nn.Module):
    def __init__(self, wf=2.0, df=0.5, bf=2.25, c1=4, c5=32, classes=5, kt=5):
        super().__init__()
        stem_w = round_width(c1, wf)
        self.s1 = nn.Module()
        self.s1.pathway0_stem = Stem(stem_w, kt)
        base = [c1]
        for _ in range(3):
            base.append(round_width(base[-1], 2.0, 8, 8))
        cin = stem_w
        for s, (b, d) in enumerate(zip(base, [1, 2, 5, 3])):
            w = round_width(b, wf)
            inner = int(bf * w)
            setattr(self, "s%d" % (s + 2), Stage(int(math.ceil(df * d)), cin, inner, w))
            cin = w
        self.head = Head(cin, inner, c5, classes)

    def forward(self, x):
        x = self.s1.pathway0_stem(x)
        for s in range(2, 6):
            x = getattr(self, "s%d" % s)(x)
        h = self.head
        feat = F.relu(h.conv_5_bn(h.conv_5(x)))
        p = feat.mean(dim=(2, 3, 4), keepdim=True)
        z = F.relu(h.lin_5(p)).flatten(1)
        return h.projection(z), feat, feat.mean(dim=(3, 4))


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    net = X3DSmall()
    with torch.no_grad():
        for name, t in net.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand_like(t) * 0.5 + 0.75)
            elif name.endswith("running_mean"):
                t.copy_(torch.randn_like(t) * 0.1)
            elif name.endswith("bn.weight") or "_bn.weight" in name:
                t.copy_(torch.rand_like(t) * 0.5 + 0.75)
            elif name.endswith("bias"):
                t.copy_(torch.randn_like(t) * 0.1)
            else:
                fan_in = t[0].numel()
                t.copy_(torch.randn_like(t) * math.sqrt(2.0 / fan_in))
    out = {}
    for name, t in net.state_dict().items():
        if not name.endswith("num_batches_tracked"):
            out["w." + name] = t.clone()
    x = torch.randn(2, 3, 4, 32, 32)
    out["x"] = x
    net.eval()
    with torch.no_grad():
        logits, feat, frames = net(x)
    out["eval.logits"], out["eval.features"], out["eval.frame_features"] = logits, feat, frames
    # blocks alone, eval
    with torch.no_grad():
        b0 = net.s2.pathway0_res0
        x0 = torch.randn(2, b0.branch2.a.in_channels, 4, 16, 16)
        out["blk0.x"], out["blk0.y"] = x0, b0(x0)
        b1 = net.s4.pathway0_res1
        x1 = torch.randn(2, b1.branch2.a.in_channels, 4, 4, 4)
        out["blk1.x"], out["blk1.y"] = x1, b1(x1)
    # train mode (batch statistics): logits and a few gradients
    net.train()
    train_net = X3DSmall()
    train_net.load_state_dict(net.state_dict())
    train_net.train()
    logits, _, _ = train_net(x)
    r = torch.randn_like(logits)
    (logits * r).sum().backward()
    out["train.logits"] = logits.detach()
    out["r"] = r
    for key in ["s1.pathway0_stem.conv_xy.weight", "s1.pathway0_stem.conv.weight",
                "s3.pathway0_res0.branch2.b.weight", "s2.pathway0_res0.branch2.se.fc1.weight",
                "s4.pathway0_res2.branch2.se.fc2.bias", "s5.pathway0_res0.branch1.weight",
                "head.lin_5.weight", "head.projection.weight"]:
        out["grad." + key] = dict(train_net.named_parameters())[key].grad.clone()
    size = write_safetensors(OUT, out, {"generator": "scripts/make_x3d_fixtures.py", "torch": torch.__version__})
    print("wrote %s (%d bytes, %d tensors)" % (OUT, size, len(out)))
    if size >= 1 << 20:
        sys.exit("fixture larger than 1 MB")


if __name__ == "__main__":
    main()
