#!/usr/bin/python3
"""make_fixtures.py — regenerates the PyTorch reference fixtures of the backbone tests.

Writes, under tests/fixtures/ (or the directory given as the first argument), small versions of
torchvision's MobileNetV2 and ResNet-18/50 with random weights and non-trivial batch-norm
statistics, a random input, and what PyTorch computes from them, as safetensors files that
tests/test_backbones.c reads:

  mobilenet_v2.safetensors      torchvision mobilenet_v2(width_mult=0.25, num_classes=10)
  resnet18.safetensors          torchvision ResNet layout, BasicBlock (2,2,2,2), base width 8
  resnet50.safetensors          torchvision ResNet layout, Bottleneck (3,4,6,3), base width 4
  mobilenet_v2_tsm.safetensors  MobileNetV2-TSM (T = 4) on 2 clips, weights of mobilenet_v2
  resnet18_tsm.safetensors      ResNet-18-TSM (T = 4, blockres) on 2 clips, weights of resnet18
  tsm_shift.safetensors         the TSM shift on random tensors, forward and backward

Each model file holds
  weights.<state_dict key>     the model's state_dict (num_batches_tracked included, as a real
                               checkpoint has it)
  input                        (N, 3, H, W)
  eval.features / eval.pooled / eval.logits      model.eval(): running statistics
  train.features / train.pooled / train.logits   model.train(): batch statistics (dropout 0)
  train.state.<key>            every running_mean / running_var after that training pass
  train.grad_logits            R (random), and for the loss Σ train.logits · R:
  train.grad.<key>             its gradient with respect to a few parameters (the *_GRAD_KEYS
                               below; the stem's weight among them, so the whole backward pass)
and __metadata__ with the configuration and, as torch_fp32_err.<name>, how far PyTorch's own
fp32 pass is from each expectation. The TSM model files hold no weights (they reuse the plain
model's file; "weights_from" in the metadata names it).

The expectations are computed in float64 and rounded once (the exact answer to fp32
precision), and a fixture is written only if PyTorch's fp32 pass agrees with them to
CONDITIONING: see expected_outputs().

Run with Debian's PyTorch (python3-torch 1.13, python3-torchvision 0.14): `make fixtures`.
The safetensors package is not needed: the format is written here with struct + json.
"""
import copy
import json
import os
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

SEED = 20240601
BN_MOMENTUM = 0.1
# A fixture is written only when PyTorch's own fp32 pass agrees with the float64 reference to
# this (max |a − b| / max |b| on every stored expectation): then the C tests' bound of 1e-4 has a
# 3× margin over fp32 rounding, and a failure means a bug, not an ill-conditioned problem (deep
# random networks in training mode can amplify rounding by orders of magnitude, and a ReLU input
# within rounding of 0 flips a gradient term).
CONDITIONING = 3e-5

# Parameters whose gradients the fixtures hold: the stem, a block in the middle (a depthwise conv
# and a batch norm for MobileNetV2; a shifted conv1 and a downsample for the ResNets), the head.
MNV2_GRAD_KEYS = ["features.0.0.weight", "features.5.conv.1.0.weight", "features.5.conv.1.1.weight",
                  "features.5.conv.1.1.bias", "features.18.1.weight", "classifier.1.weight", "classifier.1.bias"]
R18_GRAD_KEYS = ["conv1.weight", "bn1.weight", "layer2.0.conv1.weight", "layer2.0.downsample.0.weight",
                 "layer3.1.conv1.weight", "layer4.1.bn2.bias", "fc.weight", "fc.bias"]
R50_GRAD_KEYS = ["conv1.weight", "layer1.0.conv1.weight", "layer2.0.conv2.weight", "layer3.5.conv3.weight",
                 "layer4.0.downsample.1.weight", "fc.weight", "fc.bias"]


# ---- safetensors writer -------------------------------------------------------------------

DTYPES = {torch.float32: ("F32", 4), torch.int64: ("I64", 8)}


def write_safetensors(path, tensors, metadata):
    """Writes {name: tensor} atomically: tensors sorted by element size (largest first) then
    name, so each is aligned to its size; the header is padded with spaces to a multiple of 8."""
    if sys.byteorder != "little":
        raise SystemExit("make_fixtures.py: safetensors data is little-endian; run on a little-endian machine")
    names = sorted(tensors, key=lambda n: (-DTYPES[tensors[n].dtype][1], n))
    header, blobs, offset = {}, [], 0
    for name in names:
        t = tensors[name].detach().contiguous().cpu()
        dtype, _ = DTYPES[t.dtype]
        blob = t.numpy().tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(blob)]}
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
    return offset + len(raw) + 8


# ---- models --------------------------------------------------------------------------------

class WidthResNet(ResNet):
    """torchvision's ResNet with the stem/first-stage width as a parameter (64 in torchvision).
    Everything else — the blocks, _make_layer, the forward pass, the state_dict keys — is
    torchvision's own; only the hard-coded 64 of ResNet.__init__ is replaced."""

    def __init__(self, block, layers, base_width, num_classes):
        nn.Module.__init__(self)
        self._norm_layer = nn.BatchNorm2d
        self.inplanes = base_width
        self.dilation = 1
        self.groups = 1
        self.base_width = 64  # torchvision's width_per_group: 64 keeps the bottleneck width = planes
        self.conv1 = nn.Conv2d(3, base_width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(base_width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, base_width, layers[0])
        self.layer2 = self._make_layer(block, base_width * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(block, base_width * 4, layers[2], stride=2)
        self.layer4 = self._make_layer(block, base_width * 8, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(base_width * 8 * block.expansion, num_classes)
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)


def tsm_shift(x, n_segment, fold_div=8):
    """The official TSM shift (TemporalShift.shift, not in place), written out: x (N·T, C, H, W);
    channels [0, fold) come from the next frame, [fold, 2·fold) from the previous one, zeros at
    the clip ends; the rest stay."""
    nt, c, h, w = x.size()
    x = x.view(nt // n_segment, n_segment, c, h, w)
    fold = c // fold_div
    out = torch.zeros_like(x)
    out[:, :-1, :fold] = x[:, 1:, :fold]
    out[:, 1:, fold:2 * fold] = x[:, :-1, fold:2 * fold]
    out[:, :, 2 * fold:] = x[:, :, 2 * fold:]
    return out.view(nt, c, h, w)


class Shifted(nn.Module):
    """TSM's TemporalShift wrapper: shift the input, then run the wrapped module."""

    def __init__(self, net, n_segment, fold_div=8):
        super().__init__()
        self.net, self.n_segment, self.fold_div = net, n_segment, fold_div

    def forward(self, x):
        return self.net(tsm_shift(x, self.n_segment, self.fold_div))


def add_tsm_resnet(model, n_segment):
    """TSM's make_temporal_shift(place='blockres'): every block's conv1 (every second block
    when layer3 has 23 or more blocks)."""
    n_round = 2 if len(model.layer3) >= 23 else 1
    for layer in (model.layer1, model.layer2, model.layer3, model.layer4):
        for i, block in enumerate(layer):
            if i % n_round == 0:
                block.conv1 = Shifted(block.conv1, n_segment)


def add_tsm_mobilenet_v2(model, n_segment):
    """TSM's MobileNetV2 placement: the first conv of every inverted-residual block that has an
    expansion layer and a residual connection (len(conv) == 4 in torchvision's layout)."""
    for m in model.modules():
        if isinstance(m, torchvision.models.mobilenetv2.InvertedResidual) and len(m.conv) == 4 and m.use_res_connect:
            m.conv[0] = Shifted(m.conv[0], n_segment)


def randomise_batch_norms(model, gen):
    """Non-trivial statistics so that a wrong running mean/var or γ/β shows. The shifts β are
    positive so that most ReLUs stay active on the random input: in training mode a channel whose
    batch is nearly constant (mostly dead ReLUs) is normalised to unit variance, which magnifies
    rounding errors by 1/std and would make an fp32 comparison meaningless (see CONDITIONING)."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.weight.data = torch.empty(c).uniform_(0.5, 1.5, generator=gen)
            m.bias.data = torch.empty(c).uniform_(0.2, 0.6, generator=gen)
            m.running_mean.data = torch.empty(c).normal_(0.0, 0.2, generator=gen)
            m.running_var.data = torch.empty(c).uniform_(0.5, 2.0, generator=gen)
            m.num_batches_tracked.fill_(7)


def run_mobilenet_v2(model, x):
    f = model.features(x)
    p = torch.flatten(F.adaptive_avg_pool2d(f, (1, 1)), 1)
    return f, p, model.classifier(p)


def run_resnet(model, x):
    h = model.maxpool(model.relu(model.bn1(model.conv1(x))))
    f = model.layer4(model.layer3(model.layer2(model.layer1(h))))
    p = torch.flatten(model.avgpool(f), 1)
    return f, p, model.fc(p)


def max_rel_err(got, want):
    """max |got − want| / max |want|: the measure the C tests report."""
    return ((got.double() - want).abs().max() / want.abs().max()).item()


def forward_pass(model, run, x, train, r, grad_keys):
    """One pass in eval or train mode; in train mode also the gradients of Σ logits·r with
    respect to the parameters named in grad_keys."""
    model.train(train)
    if not train:
        with torch.no_grad():
            return dict(zip(("features", "pooled", "logits"), run(model, x)))
    params = {k.replace(".net.", "."): v for k, v in model.named_parameters()}
    outputs = run(model, x)
    res = {name: t.detach() for name, t in zip(("features", "pooled", "logits"), outputs)}
    grads = torch.autograd.grad((outputs[2] * r.to(outputs[2].dtype)).sum(), [params[k] for k in grad_keys])
    for k, g in zip(grad_keys, grads):
        res["grad." + k] = g
    return res


def expected_outputs(model, run, x, grad_keys, gen, meta):
    """eval.* with the running statistics, then train.* with batch statistics (which updates the
    running statistics: train.state.*). The training pass is also differentiated: for the loss
    Σ logits · train.grad_logits (random), train.grad.<key> for the parameters named in
    grad_keys.

    The expectations are computed in float64 (a double copy of the model; the stored f32 weights
    and input are exact in it) and rounded to f32 once, so they are the exact answer to f32
    precision and a test measures only the C code's own rounding. PyTorch's fp32 result's error
    against them goes into the metadata (torch_fp32_err.*), for comparison."""
    r = torch.empty(x.shape[0], model_classes(model)).uniform_(-1.0, 1.0, generator=gen)
    ref = copy.deepcopy(model).double()
    out = {"train.grad_logits": r}
    for mode, train in (("eval", False), ("train", True)):
        want = forward_pass(ref, run, x.double(), train, r, grad_keys)
        got = forward_pass(model, run, x, train, r, grad_keys)  # PyTorch's own fp32, for the record
        for name, t in want.items():
            out[f"{mode}.{name}"] = t.float()
            err = max_rel_err(got[name], t)
            meta[f"torch_fp32_err.{mode}.{name}"] = f"{err:.3e}"
            if err > CONDITIONING:
                raise SystemExit(f"make_fixtures.py: {meta['model']}: PyTorch fp32 {mode}.{name} differs from the "
                                 f"float64 reference by {err:.2e} > {CONDITIONING:.0e}: the configuration is "
                                 f"ill-conditioned for an fp32 comparison; change the input size, batch or seed")
    for key, t in ref.state_dict().items():
        if key.endswith("running_mean") or key.endswith("running_var"):
            out["train.state." + key.replace(".net.", ".")] = t.float()
    return out


def model_classes(model):
    return model.fc.out_features if hasattr(model, "fc") else model.classifier[-1].out_features


def model_fixture(model, run, x, grad_keys, gen, meta):
    tensors = {"weights." + k: v.clone() for k, v in model.state_dict().items()}
    tensors["input"] = x
    tensors.update(expected_outputs(model, run, x, grad_keys, gen, meta))
    return tensors, meta


def base_meta(**kw):
    meta = {"generator": "scripts/make_fixtures.py", "torch": torch.__version__,
            "torchvision": torchvision.__version__, "seed": SEED, "bn_eps": 1e-5, "bn_momentum": BN_MOMENTUM}
    meta.update(kw)
    return meta


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures")
    os.makedirs(out_dir, exist_ok=True)
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    torch.set_num_threads(1)
    files = {}

    # MobileNetV2, torchvision layout, width 0.25; dropout 0 so training-mode logits are defined.
    mnv2 = torchvision.models.mobilenet_v2(width_mult=0.25, num_classes=10, dropout=0.0)
    randomise_batch_norms(mnv2, gen)
    mnv2_state = {k: v.clone() for k, v in mnv2.state_dict().items()}
    x = torch.empty(4, 3, 64, 64).uniform_(-1.0, 1.0, generator=gen)
    files["mobilenet_v2.safetensors"] = model_fixture(
        mnv2, run_mobilenet_v2, x, MNV2_GRAD_KEYS, gen,
        base_meta(model="mobilenet_v2", layout="torchvision", width_mult=0.25, num_classes=10, dropout=0.0))

    # ResNet-18 (basic blocks) at base width 8 and ResNet-50 (bottlenecks, v1.5) at base width 4.
    r18 = WidthResNet(BasicBlock, [2, 2, 2, 2], base_width=8, num_classes=10)
    randomise_batch_norms(r18, gen)
    r18_state = {k: v.clone() for k, v in r18.state_dict().items()}
    x = torch.empty(2, 3, 64, 64).uniform_(-1.0, 1.0, generator=gen)
    files["resnet18.safetensors"] = model_fixture(
        r18, run_resnet, x, R18_GRAD_KEYS, gen, base_meta(model="resnet18", base_width=8, num_classes=10))

    r50 = WidthResNet(Bottleneck, [3, 4, 6, 3], base_width=4, num_classes=10)
    randomise_batch_norms(r50, gen)
    x = torch.empty(4, 3, 64, 64).uniform_(-1.0, 1.0, generator=gen)
    files["resnet50.safetensors"] = model_fixture(
        r50, run_resnet, x, R50_GRAD_KEYS, gen, base_meta(model="resnet50", base_width=4, num_classes=10))

    # The TSM models: the same weights as the plain ones, 2 clips of T = 4 frames.
    T = 4
    mnv2.load_state_dict(mnv2_state)
    add_tsm_mobilenet_v2(mnv2, T)
    x = torch.empty(2 * T, 3, 32, 32).uniform_(-1.0, 1.0, generator=gen)
    meta = base_meta(model="mobilenet_v2", layout="torchvision", width_mult=0.25, num_classes=10, dropout=0.0,
                     tsm_segments=T, tsm_fold_div=8, weights_from="mobilenet_v2.safetensors")
    tensors = {"input": x}
    tensors.update(expected_outputs(mnv2, run_mobilenet_v2, x, MNV2_GRAD_KEYS, gen, meta))
    files["mobilenet_v2_tsm.safetensors"] = (tensors, meta)

    r18.load_state_dict(r18_state)
    add_tsm_resnet(r18, T)
    x = torch.empty(2 * T, 3, 32, 32).uniform_(-1.0, 1.0, generator=gen)
    meta = base_meta(model="resnet18", base_width=8, num_classes=10, tsm_segments=T, tsm_fold_div=8,
                     tsm_place="blockres", weights_from="resnet18.safetensors")
    tensors = {"input": x}
    tensors.update(expected_outputs(r18, run_resnet, x, R18_GRAD_KEYS, gen, meta))
    files["resnet18_tsm.safetensors"] = (tensors, meta)

    # The shift alone: C a multiple of 8, C not a multiple of 8 (fold = 1), and fold_div 4.
    # grad_input is d(Σ output·grad_output)/d(input).
    tensors, cases = {}, []
    for name, (n, t, c, h, w, div) in {"a": (2, 4, 16, 3, 2, 8), "b": (1, 3, 10, 2, 2, 8),
                                       "c": (3, 2, 9, 1, 3, 4)}.items():
        x = torch.empty(n * t, c, h, w).uniform_(-1.0, 1.0, generator=gen).requires_grad_(True)
        y = tsm_shift(x, t, div)
        gy = torch.empty_like(y).uniform_(-1.0, 1.0, generator=gen)
        (gx,) = torch.autograd.grad(y, x, gy)
        tensors.update({name + ".input": x, name + ".output": y, name + ".grad_output": gy, name + ".grad_input": gx})
        cases.append(f"{name}:T={t}:fold_div={div}")
    files["tsm_shift.safetensors"] = (tensors, base_meta(cases=" ".join(cases)))

    total = 0
    for fname, (tensors, meta) in files.items():
        size = write_safetensors(os.path.join(out_dir, fname), tensors, meta)
        total += size
        print(f"  {fname:32s} {len(tensors):4d} tensors {size / 1e6:8.3f} MB")
    print(f"  total {total / 1e6:.3f} MB")


if __name__ == "__main__":
    main()
