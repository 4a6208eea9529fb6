#!/usr/bin/python3
"""convert_checkpoint.py — turns an official PyTorch checkpoint into a safetensors file for focusbench.

    scripts/convert_checkpoint.py actnet_p128.pth.tar actnet_p128.safetensors

Reads a checkpoint written with torch.save (the official Uni-AdaFocus / AdaFocus checkpoints are
`.pth.tar` files holding {'epoch', 'state_dict', 'best_acc1'/'best_mAP', 'optimizer', ...}; a bare
state_dict works too), takes its state_dict, removes the "module." prefix that nn.DataParallel
adds (so the keys are the model's own state_dict names, which focusbench's parameters use), and
writes every tensor under that key, in its own dtype, as safetensors. BatchNorm's
`num_batches_tracked` buffers are kept (focusbench ignores them when loading).

The file is written here with struct + json (no `safetensors` package needed) and laid out as
focusbench's C writer does (impl/safetensors.c): tensors sorted by element size, largest first,
then by name; header padded with spaces to a multiple of 8; written to OUT.tmp, fsynced, then
renamed, so a failed run never leaves a half-written file. The result is read back and checked
before the script reports success.

Needs PyTorch (Debian: python3-torch; tested with 1.13) to read the checkpoint; --help and
--self-test do not. Loading never runs code from the file: the unpickler only creates tensors,
dtypes, plain containers, numpy scalars/arrays and argparse namespaces (what checkpoints hold)
and refuses anything else by name. --unsafe-pickle loads with PyTorch's full unpickler instead,
which runs the pickle's code: use it only for files you trust.

Exit status: 0 on success, 1 with a one-line reason on stderr on failure, 2 on usage errors.
"""
import argparse
import json
import os
import struct
import sys

# Format dtype name -> bytes per element (byte-sized dtypes of the safetensors format).
DTYPE_SIZES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4, "F64": 8, "I64": 8, "U64": 8,
}
MAX_HEADER_BYTES = 100_000_000  # the reference implementation's limit


class ConvertError(Exception):
    """A problem with the input or output that the user can fix; printed as one line."""


# ---- the format: writing and checking (no PyTorch needed) --------------------------------------

def write_safetensors(path, tensors, metadata):
    """Writes tensors = [(name, dtype, shape, raw_bytes)] and metadata = {str: str} to path,
    atomically. Returns the file size."""
    if sys.byteorder != "little":
        raise ConvertError("safetensors data is little-endian; run the converter on a little-endian machine")
    names = [t[0] for t in tensors]
    if len(set(names)) != len(names):
        dup = sorted(n for n in set(names) if names.count(n) > 1)
        raise ConvertError("duplicate tensor names: %s" % ", ".join(dup[:5]))
    ordered = sorted(tensors, key=lambda t: (-DTYPE_SIZES[t[1]], t[0].encode("utf-8")))
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    offset = 0
    for name, dtype, shape, raw in ordered:
        numel = 1
        for d in shape:
            numel *= d
        if len(raw) != numel * DTYPE_SIZES[dtype]:
            raise ConvertError("tensor %s: %d bytes for %s %s" % (name, len(raw), dtype, list(shape)))
        if name == "__metadata__" or not name:
            raise ConvertError("invalid tensor name %r" % name)
        header[name] = {"dtype": dtype, "shape": [int(d) for d in shape],
                        "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
    # ensure_ascii=False: UTF-8 names stay as they are, like the C writer writes them.
    raw_header = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    raw_header += b" " * (-(8 + len(raw_header)) % 8)
    if len(raw_header) > MAX_HEADER_BYTES:
        raise ConvertError("the header would be %d bytes, above the format's limit" % len(raw_header))

    if os.path.isdir(path):
        raise ConvertError("%s is a directory; give a file path for the output" % path)
    tmp = path + ".tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(raw_header)))
            f.write(raw_header)
            for _, _, _, raw in ordered:
                f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise ConvertError("cannot write %s: %s" % (path, e.strerror or e)) from e
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename durable; the file itself is complete either way
        dfd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
    return 8 + len(raw_header) + offset


def check_safetensors(path):
    """Reads path back with the same rules as focusbench's reader (length, JSON, dtypes, sizes,
    offsets tiling the data section). Returns (header dict without metadata, metadata)."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ConvertError("%s: only %d bytes" % (path, len(head)))
        (n,) = struct.unpack("<Q", head)
        if n > MAX_HEADER_BYTES or n > size - 8:
            raise ConvertError("%s: bad header length %d (file size %d)" % (path, n, size))
        header = json.loads(f.read(n).decode("utf-8"))
    metadata = header.pop("__metadata__", {})
    data_len = size - 8 - n
    spans = []
    for name, e in header.items():
        numel = 1
        for d in e["shape"]:
            numel *= d
        begin, end = e["data_offsets"]
        if e["dtype"] not in DTYPE_SIZES or end - begin != numel * DTYPE_SIZES[e["dtype"]] or end > data_len:
            raise ConvertError("%s: tensor %s is inconsistent after writing" % (path, name))
        spans.append((begin, end))
    at = 0
    for begin, end in sorted(spans):
        if begin != at:
            raise ConvertError("%s: the data section is not contiguous after writing" % path)
        at = end
    if at != data_len:
        raise ConvertError("%s: %d stray bytes after the last tensor" % (path, data_len - at))
    return header, metadata


# ---- PyTorch side ---------------------------------------------------------------------------

def torch_dtypes(torch):
    table = {
        torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
        torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
        torch.uint8: "U8", torch.bool: "BOOL",
    }
    return table


class RefusedGlobal(Exception):
    """The pickle names a Python callable outside the allow-list."""


def restricted_pickle_module(torch):
    """A pickle module for torch.load whose Unpickler only resolves the globals a checkpoint
    needs (tensor rebuilders, dtypes, OrderedDict, numpy scalars/arrays, argparse.Namespace,
    plain containers); torch.load resolves storage classes itself before asking it. This is
    what weights_only=True does in newer PyTorch; doing it here also works on PyTorch 1.13,
    whose weights_only loader refuses even the floats of an optimizer's state."""
    import pickle
    import types

    allowed = {
        ("collections", "OrderedDict"), ("torch._utils", "_rebuild_tensor"), ("torch._utils", "_rebuild_tensor_v2"),
        ("torch._utils", "_rebuild_parameter"), ("torch._utils", "_rebuild_parameter_with_state"),
        ("torch", "Size"), ("torch", "device"), ("builtins", "set"), ("builtins", "frozenset"),
        ("builtins", "slice"), ("builtins", "complex"), ("argparse", "Namespace"), ("_codecs", "encode"),
        ("numpy", "dtype"), ("numpy", "ndarray"),
        ("numpy.core.multiarray", "scalar"), ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"), ("numpy._core.multiarray", "_reconstruct"),
    }

    class Unpickler(pickle.Unpickler):
        def find_class(self, module, name):
            if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
                return getattr(torch, name)
            if (module, name) in allowed or module == "numpy.dtypes":  # numpy >= 1.25 dtype classes
                return super().find_class(module, name)
            raise RefusedGlobal("%s.%s" % (module, name))

    def load(f, **kw):
        return Unpickler(f, **kw).load()

    def loads(data, **kw):
        import io
        return load(io.BytesIO(data), **kw)

    # Everything else (exceptions, constants) as in the real module.
    mod = types.ModuleType("focusbench_restricted_pickle")
    mod.__dict__.update({k: v for k, v in pickle.__dict__.items() if not k.startswith("__")})
    mod.Unpickler, mod.load, mod.loads = Unpickler, load, loads
    return mod


def guarded_torch_load(torch, source, restricted, patch):
    """torch.load with the restricted unpickler. Some PyTorch versions (1.13) replace a caller's
    pickle_module by the standard one; with patch=True the module-level `pickle` that
    torch.serialization falls back to is swapped for the duration of the call."""
    import torch.serialization as ser
    saved = ser.pickle
    if patch:
        ser.pickle = restricted
    try:
        try:
            return torch.load(source, map_location="cpu", pickle_module=restricted, weights_only=False)
        except TypeError as e:  # PyTorch < 1.13: no weights_only argument
            if "weights_only" not in str(e):
                raise
            return torch.load(source, map_location="cpu", pickle_module=restricted)
    finally:
        ser.pickle = saved


def safe_loader(torch):
    """Finds a way to make torch.load honour the restricted unpickler, proven on a harmless probe
    (a checkpoint holding a fractions.Fraction, which must be refused), before the user's file
    is unpickled. Returns a function path -> object, or None when this PyTorch allows no way."""
    import fractions
    import io
    restricted = restricted_pickle_module(torch)
    buf = io.BytesIO()
    torch.save({"t": torch.zeros(1), "probe": fractions.Fraction(1, 2)}, buf)
    for patch in (False, True):
        buf.seek(0)
        try:
            guarded_torch_load(torch, buf, restricted, patch)
        except RefusedGlobal:
            return lambda path, patch=patch: guarded_torch_load(torch, path, restricted, patch)
        except Exception:
            pass
    return None


def load_checkpoint(torch, path, unsafe_pickle):
    if not os.path.isfile(path):
        raise ConvertError("%s: no such file" % path)
    try:
        if unsafe_pickle:
            try:
                return torch.load(path, map_location="cpu", weights_only=False)
            except TypeError:  # PyTorch < 1.13: no weights_only argument
                return torch.load(path, map_location="cpu")
        loader = safe_loader(torch)
        if loader is None:
            raise ConvertError("this PyTorch (%s) cannot load %s without running code from the file; if you trust "
                               "it, rerun with --unsafe-pickle" % (torch.__version__, path))
        return loader(path)
    except RefusedGlobal as e:
        raise ConvertError("%s refers to the Python object %s, which the safe loader does not create; if you trust "
                           "the file, rerun with --unsafe-pickle" % (path, e)) from e
    except ConvertError:
        raise
    except Exception as e:
        text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConvertError("cannot read %s as a PyTorch checkpoint (%s: %s)" % (path, type(e).__name__, text[:200])) from e


def find_state_dict(torch, obj, key):
    """The state_dict inside a checkpoint: obj[key], obj['state_dict'], or obj itself."""
    if not isinstance(obj, dict):
        raise ConvertError("the checkpoint is a %s, not a dict (state_dict or {'state_dict': ...})" % type(obj).__name__)
    if key is not None:
        if key not in obj:
            raise ConvertError("the checkpoint has no key %r (it has: %s)" % (key, ", ".join(map(str, list(obj)[:10]))))
        sd = obj[key]
    elif "state_dict" in obj and isinstance(obj["state_dict"], dict):
        sd = obj["state_dict"]
    elif "model" in obj and isinstance(obj["model"], dict):
        sd = obj["model"]
    else:
        sd = obj
    if not isinstance(sd, dict) or not sd:
        raise ConvertError("no state_dict found (top-level keys: %s); name it with --key" % ", ".join(map(str, list(obj)[:10])))
    bad = [k for k, v in sd.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ConvertError("the state_dict holds non-tensor values (%s); name the right entry with --key"
                           % ", ".join(map(str, bad[:5])))
    return sd


def rename_keys(sd, prefix):
    """Removes prefix from every key that has it; refuses two keys that become one."""
    out, origin, stripped = {}, {}, 0
    for k, v in sd.items():
        name = k
        if prefix and k.startswith(prefix):
            name = k[len(prefix):]
            stripped += 1
        if name in out:
            raise ConvertError("keys %r and %r both become %r after removing %r; use --keep-prefix"
                               % (origin[name], k, name, prefix))
        out[name] = v
        origin[name] = k
    return out, stripped


def tensor_bytes(t):
    """Raw little-endian bytes of a contiguous CPU tensor (no numpy needed, bf16 included)."""
    import ctypes
    t = t.detach().to("cpu").contiguous()
    n = t.numel() * t.element_size()
    return ctypes.string_at(t.data_ptr(), n) if n else b""


def convert(args):
    try:
        import torch
    except ImportError as e:
        raise ConvertError("PyTorch is needed to read .pth/.pth.tar checkpoints (Debian: apt install python3-torch; "
                           "or pip install torch)") from e
    obj = load_checkpoint(torch, args.input, args.unsafe_pickle)
    sd = find_state_dict(torch, obj, args.key)
    prefix = None if args.keep_prefix else args.strip_prefix
    sd, stripped = rename_keys(sd, prefix)

    names = torch_dtypes(torch)
    cast = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}.get(args.dtype)
    tensors, counts, n_params = [], {}, 0
    for name, t in sd.items():
        if t.is_sparse or t.is_quantized or t.is_complex():
            raise ConvertError("tensor %s: sparse, quantized and complex tensors are not supported" % name)
        if cast is not None and t.is_floating_point():
            t = t.to(cast)
        if t.dtype not in names:
            raise ConvertError("tensor %s: dtype %s has no safetensors equivalent here" % (name, t.dtype))
        dtype = names[t.dtype]
        tensors.append((name, dtype, list(t.shape), tensor_bytes(t)))
        counts[dtype] = counts.get(dtype, 0) + 1
        if not name.endswith("num_batches_tracked"):
            n_params += t.numel()

    metadata = {"format": "pt", "source": os.path.basename(args.input),
                "converted_by": "focusbench scripts/convert_checkpoint.py"}
    if isinstance(obj, dict):
        for k in ("epoch", "best_acc1", "best_prec1", "best_mAP", "arch"):
            v = obj.get(k)
            if isinstance(v, (int, float, str)):
                metadata[k] = str(v)
            elif isinstance(v, torch.Tensor) and v.numel() == 1:
                metadata[k] = str(v.item())
            elif hasattr(v, "item") and getattr(v, "size", None) == 1:  # a numpy scalar (--unsafe-pickle)
                metadata[k] = str(v.item())
    for kv in args.metadata or []:
        if "=" not in kv:
            raise ConvertError("--metadata wants KEY=VALUE, got %r" % kv)
        k, v = kv.split("=", 1)
        metadata[k] = v

    size = write_safetensors(args.output, tensors, metadata)
    header, _ = check_safetensors(args.output)
    if len(header) != len(tensors):
        raise ConvertError("%s: %d tensors read back, %d written" % (args.output, len(header), len(tensors)))
    summary = ", ".join("%d %s" % (counts[d], d) for d in sorted(counts))
    print("wrote %s: %d tensors (%s), %d parameters, %.1f MB" % (args.output, len(tensors), summary, n_params, size / 1e6))
    if stripped:
        print("removed the prefix %r from %d of %d keys" % (prefix, stripped, len(tensors)))


def self_test():
    """Writes and checks a small file without PyTorch (the format side of this script)."""
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "t.safetensors")
        tensors = [("w", "F32", [2, 3], struct.pack("<6f", *range(6))), ("i", "I64", [], struct.pack("<q", 7)),
                   ("h", "F16", [1], b"\x00\x3c"), ("e", "F32", [0, 4], b""), ("caf\u00e9\n", "U8", [1], b"\x01")]
        size = write_safetensors(path, tensors, {"k": "v"})
        header, meta = check_safetensors(path)
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
        assert size == os.path.getsize(path) == 8 + n + 8 + 24 + 2 + 1 and (8 + n) % 8 == 0
        assert meta == {"k": "v"} and set(header) == {t[0] for t in tensors}
        assert header["i"]["data_offsets"] == [0, 8] and header["w"]["data_offsets"] == [8, 32]
        assert os.listdir(d) == ["t.safetensors"]
    print("convert_checkpoint.py self-test passed")


def main(argv=None):
    p = argparse.ArgumentParser(
        description="Convert a PyTorch checkpoint (.pth/.pth.tar, with or without 'module.' prefixes) "
                    "to safetensors with the same key names, for focusbench.",
        epilog="Example: %(prog)s actnet_p128.pth.tar actnet_p128.safetensors")
    p.add_argument("input", nargs="?", help="checkpoint written by torch.save")
    p.add_argument("output", nargs="?", help="safetensors file to write (replaced atomically)")
    p.add_argument("--key", help="entry of the checkpoint dict that holds the state_dict "
                                 "(default: 'state_dict', then 'model', then the dict itself)")
    p.add_argument("--strip-prefix", default="module.",
                   help="prefix removed from keys that have it (default: %(default)s, added by nn.DataParallel)")
    p.add_argument("--keep-prefix", action="store_true", help="keep keys exactly as they are in the checkpoint")
    p.add_argument("--dtype", choices=["keep", "f32", "f16", "bf16"], default="keep",
                   help="convert floating-point tensors (default: keep each tensor's dtype)")
    p.add_argument("--metadata", action="append", metavar="KEY=VALUE", help="extra __metadata__ entry (repeatable)")
    p.add_argument("--unsafe-pickle", action="store_true",
                   help="load with the full unpickler (runs code from the file; only for trusted checkpoints)")
    p.add_argument("--self-test", action="store_true", help="check the safetensors writer without PyTorch and exit")
    args = p.parse_args(argv)
    if args.self_test:
        self_test()
        return 0
    if not args.input or not args.output:
        p.print_usage(sys.stderr)
        print("%s: error: give the input checkpoint and the output file" % p.prog, file=sys.stderr)
        return 2
    try:
        convert(args)
    except ConvertError as e:
        print("convert_checkpoint.py: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
