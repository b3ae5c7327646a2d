#!/usr/bin/env python3
"""Seed corpora for the fuzz targets, made from the committed fixtures, hostile ones included (stdlib only).

usage: fuzz/seeds.py OUT [--ditkit BIN] [TARGET ...]

Writes OUT/<target>/<name> for each target (all by default). Each seed is the part of a fixture its target reads,
kept small: safetensors files re-encoded with every dimension cut to at most 2 (names, dtypes, metadata kept);
torch zips rebuilt with their storage entries cut to 64 bytes (names, compression and ZIP64 records kept);
the data.pkl of every torch zip; legacy files as they are; diffusers JSON joined by the target's `@@` lines; tensor
listings and canonical configs from `ditkit inspect --json` and `ditkit convert --to canonical` when BIN is given;
traces whole and cut down to their inputs and first layers. Existing files in OUT are replaced, other files kept
(the corpus libFuzzer grew stays).
"""
import hashlib
import json
import os
import struct
import subprocess
import sys
import tempfile
import zipfile
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "fixtures")
LEGACY_MAGIC = bytes([0x80, 0x02, 0x8A, 0x0A, 0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19])
SEPARATOR = b"\n@@\n"
DTYPE_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "I64": 8, "I32": 4, "I16": 2,
               "I8": 1, "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1, "C64": 8}


def fixture_files(*suffixes, under=""):
    out = []
    for folder, _, names in os.walk(os.path.join(FIX, under)):
        out += [os.path.join(folder, n) for n in names if n.endswith(suffixes)]
    return sorted(out)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def safetensors_header(data):
    if len(data) < 8:
        return None
    n = struct.unpack("<Q", data[:8])[0]
    if n > len(data) - 8:
        return None
    try:
        return json.loads(data[8:8 + n])
    except ValueError:
        return None


def safetensors_bytes(header_entries, metadata, datas):
    """header_entries: [(name, dtype, shape)], datas: bytes per tensor."""
    header, offset = {}, 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for (name, dtype, shape), data in zip(header_entries, datas):
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(datas)


def reduced_safetensors(data, keep=None):
    """The same names, dtypes and metadata with every dimension cut to at most 2 (or only the names in keep, whole)."""
    header = safetensors_header(data)
    if not isinstance(header, dict):
        return None
    entries, datas = [], []
    start = 8 + struct.unpack("<Q", data[:8])[0]
    for name, info in header.items():
        if name == "__metadata__" or not isinstance(info, dict):
            continue
        if keep is not None:
            if not any(name == k or name.startswith(k) for k in keep):
                continue
            begin, end = info["data_offsets"]
            entries.append((name, info["dtype"], info["shape"]))
            datas.append(data[start + begin:start + end])
            continue
        shape = [min(d, 2) for d in info.get("shape", [])]
        count = 1
        for d in shape:
            count *= d
        entries.append((name, info.get("dtype", "F32"), shape))
        datas.append(bytes(count * DTYPE_SIZES.get(info.get("dtype"), 1)))
    return safetensors_bytes(entries, header.get("__metadata__"), datas)


def is_zip(data):
    return data[:4] in (b"PK\x03\x04", b"PK\x05\x06")


def reduced_zip(path):
    """The archive rebuilt with every storage entry cut to 64 bytes (its directory, names and methods kept)."""
    out = tempfile.SpooledTemporaryFile()
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            body = src.read(info.filename)
            if "/data/" in info.filename:
                body = body[:64]
            copy = zipfile.ZipInfo(info.filename, date_time=info.date_time)
            copy.compress_type = info.compress_type
            dst.writestr(copy, body)
    out.seek(0)
    return out.read()


def data_pickle(path):
    with zipfile.ZipFile(path) as z:
        names = [n for n in z.namelist() if n.count("/") == 1 and n.endswith("/data.pkl")]
        return z.read(names[0]) if names else None


def ditkit_json(ditkit, *args):
    try:
        result = subprocess.run([ditkit, *args], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    try:
        return json.loads(result.stdout)
    except ValueError:
        return None


# MARK: per target

def seeds_safetensors(ditkit):
    for path in fixture_files(".safetensors"):
        data = read(path)
        if len(data) <= 16384:
            yield os.path.basename(path), data
        small = reduced_safetensors(data)
        if small:
            yield "reduced-" + os.path.basename(path), small


def seeds_zip(ditkit):
    for path in fixture_files(".pt", ".pth", ".bin"):
        data = read(path)
        if not is_zip(data):
            continue
        if len(data) <= 16384:
            yield os.path.basename(path), data
        try:
            yield "reduced-" + os.path.basename(path), reduced_zip(path)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, zlib.error, NotImplementedError, RuntimeError):
            pass
    if ditkit:  # ditkit's own writer: ZIP64 end records, 64-byte aligned data
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "written.pt")
            src = os.path.join(FIX, "checkpoints/original/tiny-dit.safetensors")
            if subprocess.run([ditkit, "convert", src, "-o", out, "--to", "original", "--heads", "2"],
                              capture_output=True).returncode == 0:
                yield "reduced-ditkit-written.pt", reduced_zip(out)


def seeds_pickle(ditkit):
    for path in fixture_files(".pt", ".pth", ".bin"):
        data = read(path)
        if is_zip(data):
            try:
                pkl = data_pickle(path)
            except (zipfile.BadZipFile, OSError, ValueError, EOFError, zlib.error, NotImplementedError, RuntimeError):
                pkl = None
            if pkl:
                yield "data-" + os.path.basename(path) + ".pkl", pkl
        elif data[:1] == b"\x80" and not data.startswith(LEGACY_MAGIC):
            yield os.path.basename(path), data
    for path in fixture_files(".pkl"):
        yield os.path.basename(path), read(path)


def seeds_legacy(ditkit):
    for path in fixture_files(".pt", ".pth", ".bin"):
        data = read(path)
        if data.startswith(LEGACY_MAGIC):
            yield os.path.basename(path), data[:65536]


def seeds_diffusers(ditkit):
    index = read(os.path.join(FIX, "checkpoints/original/tiny-dit-sharded/model.safetensors.index.json"))
    model_index = read(os.path.join(FIX, "checkpoints/diffusers/pipeline/model_index.json"))
    configs = [(os.path.relpath(p, FIX).replace("/", "_"), read(p)) for p in fixture_files("config.json")
               if os.path.basename(p) == "config.json" and "vae" not in p]
    indexes = [(os.path.basename(p), read(p)) for p in fixture_files(".json") if ".index" in os.path.basename(p)]
    for name, config in configs:
        yield "pipeline-" + name, model_index + SEPARATOR + config + SEPARATOR + index
        yield "component-" + name, SEPARATOR + config + SEPARATOR + index
    for name, other in indexes:
        yield "index-" + name, SEPARATOR + configs[0][1] + SEPARATOR + other
    yield "pipeline-no-index", model_index + SEPARATOR + configs[0][1] + SEPARATOR


def seeds_listing(ditkit):
    if not ditkit:
        return
    paths = [p for p in fixture_files(".pt", ".safetensors", under="checkpoints") if "/hostile/" not in p]
    paths += [os.path.join(FIX, "checkpoints/diffusers/pipeline/transformer"),
              os.path.join(FIX, "checkpoints/diffusers/transformer-fp16")]
    for path in paths:
        report = ditkit_json(ditkit, "inspect", "--json", path)
        if not report or not report.get("tensors"):
            continue
        lines = []
        config = os.path.join(path, "config.json")
        if os.path.isdir(path) and os.path.exists(config):
            lines.append(json.dumps(json.loads(read(config)), separators=(",", ":")))
        for t in report["tensors"]:
            lines.append(" ".join([t["name"], t["dtype"]] + [str(d) for d in t["shape"]]))
        yield os.path.basename(path.rstrip("/")) + ".txt", ("\n".join(lines) + "\n").encode()


def seeds_canonical(ditkit):
    if not ditkit:
        return
    sources = ["checkpoints/original/tiny-dit.pt", "checkpoints/original/tiny-dit-p4.pt",
               "checkpoints/cerebras/tiny-cerebras.pt", "checkpoints/diffusers/pipeline/transformer",
               "traces/diffusers-p4-s16-gelu/transformer"]
    with tempfile.TemporaryDirectory() as tmp:
        for i, source in enumerate(sources):
            out = os.path.join(tmp, f"{i}.safetensors")
            args = [ditkit, "convert", os.path.join(FIX, source), "-o", out, "--to", "canonical"]
            if subprocess.run(args, capture_output=True).returncode != 0:
                if subprocess.run(args + ["--heads", "2"], capture_output=True).returncode != 0:
                    continue
            header = safetensors_header(read(out)) or {}
            config = header.get("__metadata__", {}).get("ditkit.config")
            if config:
                yield source.replace("/", "_") + ".json", config.encode()


def seeds_trace(ditkit):
    for path in fixture_files("trace.safetensors", under="traces"):
        data = read(path)
        name = os.path.basename(os.path.dirname(path))
        if len(data) <= 65536:
            yield name + ".safetensors", data
        small = reduced_safetensors(data, keep=["input.", "t_embed", "blocks.0", "output"])
        if small:
            yield name + "-inputs.safetensors", small


def seeds_hdf5(ditkit):
    """The HDF5 reader's fixtures that fit the target's 64 KiB inputs: h5py files and the hostile ones."""
    for path in fixture_files(".h5", under="hdf5"):
        data = read(path)
        if len(data) <= 65536:
            yield os.path.relpath(path, FIX).replace("/", "-")[:-3], data


TARGETS = {
    "safetensors": seeds_safetensors, "zip": seeds_zip, "pickle": seeds_pickle, "legacy": seeds_legacy,
    "diffusers": seeds_diffusers, "listing": seeds_listing, "canonical": seeds_canonical, "trace": seeds_trace,
    "hdf5": seeds_hdf5,
}


def main(argv):
    args = list(argv)
    ditkit = None
    if "--ditkit" in args:
        i = args.index("--ditkit")
        ditkit = args[i + 1]
        del args[i:i + 2]
    if not args:
        print(__doc__, file=sys.stderr)
        return 2
    out, names = args[0], args[1:] or list(TARGETS)
    for name in names:
        if name not in TARGETS:
            print(f"seeds.py: unknown target {name} (targets: {', '.join(TARGETS)})", file=sys.stderr)
            return 2
        folder = os.path.join(out, name)
        os.makedirs(folder, exist_ok=True)
        count = 0
        for seed_name, data in TARGETS[name](ditkit):
            digest = hashlib.sha1(data).hexdigest()[:8]
            with open(os.path.join(folder, f"seed-{seed_name}-{digest}"), "wb") as f:
                f.write(data)
            count += 1
        print(f"{name}: {count} seeds", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
