"""Compiling a model file or folder into a cached .so with bitnetc.

The cache ($BITNET_MODEL_CACHE, else ~/.cache/bitnetc) holds one .so per (model content,
target, layout, bitnetc): the key hashes the model's bytes and the compiler's, so a
changed file or another bitnetc compiles afresh and the same file under another path
does not. A finished .so is moved into place whole
(rename), so a crash mid-compile leaves no half file behind.
"""

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# The files of a model that decide what bitnetc compiles from it.
_FOLDER_FILES = ("model.safetensors", "config.json", "tokenizer.json", "tokenizer.model", "tokenizer_config.json",
                 "generation_config.json")


def find_bitnetc():
    """$BITNETC, then bitnetc on PATH, then the install this package is part of
    (<prefix>/lib/python3/dist-packages/bitnet_py -> <prefix>/bin/bitnetc), then this
    checkout's build."""
    env = os.environ.get("BITNETC")
    if env:
        if not os.access(env, os.X_OK):
            raise FileNotFoundError(f"$BITNETC names {env}, which is not an executable")
        return env
    on_path = shutil.which("bitnetc")
    if on_path:
        return on_path
    here = Path(__file__).resolve()
    for candidate in (here.parents[4] / "bin" / "bitnetc", here.parents[2] / "build" / "bin" / "bitnetc"):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise FileNotFoundError("bitnetc not found: set $BITNETC, put bitnetc on PATH, or build this checkout "
                            "(cmake --preset release && cmake --build --preset release)")


def find_tokenizer_library():
    """libbitnetc_tokenizer.so (tools/libbitnetc_tokenizer): $BITNETC_TOKENIZER_LIB, else
    in the lib/ folder beside bitnetc's bin/ (a build tree or an install)."""
    env = os.environ.get("BITNETC_TOKENIZER_LIB")
    if env:
        if not os.path.isfile(env):
            raise FileNotFoundError(f"$BITNETC_TOKENIZER_LIB names {env}, which is not a file")
        return env
    bitnetc = Path(os.path.realpath(find_bitnetc()))
    candidate = bitnetc.parent.parent / "lib" / "libbitnetc_tokenizer.so"
    if candidate.is_file():
        return str(candidate)
    raise FileNotFoundError(f"libbitnetc_tokenizer.so is not in {candidate.parent} (the lib/ beside {bitnetc.parent}): "
                            "build it with bitnetc, or set $BITNETC_TOKENIZER_LIB")


def cache_dir():
    return Path(os.environ.get("BITNET_MODEL_CACHE") or Path.home() / ".cache" / "bitnetc")


def model_files(path):
    """The files whose bytes key a model: the file itself, or a folder's model files."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    if p.is_dir():
        files = [p / name for name in _FOLDER_FILES if (p / name).is_file()]
        if not any(f.name == "model.safetensors" for f in files):
            files += sorted(p.glob("*.safetensors"))
        if not files:
            raise FileNotFoundError(f"{path}: a folder without model files (model.safetensors, config.json, ...)")
        return files
    if not p.is_file():
        raise ValueError(f"{path}: not a regular file")
    # A bitllama2.c checkpoint reads tokenizer.model beside it.
    extra = [p.parent / "tokenizer.model"] if p.suffix == ".bin" and (p.parent / "tokenizer.model").is_file() else []
    return [p] + extra


def _file_digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cache_key(path, target, layout):
    # The compiler's own bytes too: another bitnetc compiles afresh.
    h = hashlib.sha256(_file_digest(find_bitnetc()).encode())
    for f in model_files(path):
        h.update(f.name.encode() + b"\0")
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    h.update(f"\0{target}\0{layout}".encode())
    return h.hexdigest()[:32]


def compiled_library(path, target="host", layout="auto", quiet=False):
    """The cached .so of `path` for `target`, compiling it first when absent."""
    key = cache_key(path, target, layout)
    out_dir = cache_dir() / key
    so = out_dir / "libmodel.so"
    if so.is_file():
        return so
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir) as work:
        tmp = Path(work) / "libmodel.so"
        cmd = [find_bitnetc(), "compile", str(path), f"--target={target}", f"--layout={layout}", "-o", str(tmp)]
        if quiet:
            cmd.append("-q")
        done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE if quiet else None, text=True)
        if done.returncode != 0:
            from ._capi import BitNetError
            detail = (done.stderr or "").strip() if quiet else "see its messages above"
            raise BitNetError(-3, f"bitnetc could not compile {path} for {target}: {detail}")
        os.replace(tmp, so)
    if not quiet:
        print(f"bitnet_py: compiled {path} for {target} into {so}", file=sys.stderr)
    return so
