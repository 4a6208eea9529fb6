#!/usr/bin/env python3
"""compare_checkpoints.py A.safetensors B.safetensors [--prefix P] — how far two checkpoints are apart.

Reads both files with the standard library and numpy only (no torch, no safetensors package), and
prints, over the float tensors they share (optionally only keys starting with P): the number of
tensors, elements and bitwise-equal elements, the global relative difference ‖A − B‖ / ‖A‖, the
largest per-tensor relative difference and its key. Exit status 0; 2 on unreadable files or no
shared tensors. Used by the multi-GPU checks (1-rank vs N-rank training)."""
import json
import struct
import sys

import numpy as np

DTYPES = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "I64": np.int64, "I32": np.int32}


def load(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for key, info in header.items():
        if key == "__metadata__" or info["dtype"] not in DTYPES:
            continue
        lo, hi = info["data_offsets"]
        out[key] = np.frombuffer(data[lo:hi], dtype=DTYPES[info["dtype"]]).reshape(info["shape"])
    return out


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    prefix = ""
    if "--prefix" in argv:
        prefix = argv[argv.index("--prefix") + 1]
        args = [a for a in args if a != prefix]
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        a, b = load(args[0]), load(args[1])
    except (OSError, ValueError, KeyError) as e:
        print(f"compare_checkpoints: {e}", file=sys.stderr)
        return 2
    keys = sorted(k for k in a
                  if k in b and k.startswith(prefix) and a[k].dtype.kind == "f" and a[k].shape == b[k].shape)
    if not keys:
        print("compare_checkpoints: no shared float tensors", file=sys.stderr)
        return 2
    num = den = 0.0
    elems = equal = 0
    worst, worst_key = 0.0, ""
    for k in keys:
        x, y = a[k].astype(np.float64), b[k].astype(np.float64)
        d = float(np.sum((x - y) ** 2))
        s = float(np.sum(x ** 2))
        num += d
        den += s
        elems += x.size
        equal += int(np.sum(a[k] == b[k]))
        r = (d ** 0.5) / (s ** 0.5 + 1e-30)
        if r > worst:
            worst, worst_key = r, k
    print(f"tensors {len(keys)}, elements {elems}, equal {equal} ({100.0 * equal / elems:.2f}%), "
          f"relative difference {(num ** 0.5) / (den ** 0.5 + 1e-30):.3e}, largest {worst:.3e} ({worst_key})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
