"""bitnet_py: the Python API of the BitNet libraries, over models compiled by bitnetc.

    import bitnet_py as bitnet
    model = bitnet.load_model("model.gguf")          # compiled once, then cached
    engine = bitnet.SimpleInference(model, bitnet.create_tokenizer(model))
    print(engine.generate("Hello, my name is"))

A model file or folder (GGUF, .safetensors, an HF checkpoint folder, a bitllama2.c .bin)
is compiled by bitnetc into a shared object (see _compile.py); a compiled .so loads
directly. Everything runs through that library's C API (runtime_stub/api/bitnet.h) with
ctypes: pure Python, no build step. Calls release the GIL; several threads may share a
model (their generations share forward steps, each giving what it gives alone).
"""

import asyncio
import json
import math
import os
import platform
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import _capi
from ._capi import BitNetError
from ._compile import compiled_library, find_bitnetc, find_tokenizer_library

__version__ = "0.1.0"

__all__ = [
    "BitNetError", "BitNetModel", "Tokenizer", "TokenStream", "SimpleInference", "Message", "ChatFormat",
    "GenArgs", "FastGen", "ModelConfig", "GenerationConfig", "InferenceConfig", "load_model", "create_tokenizer",
    "benchmark_inference", "validate_outputs", "get_system_info", "reference_model",
]


def _target_for(device):
    """The bitnetc target of a device name: "cpu"/"auto" the host, "cuda"/"cuda:N" that GPU's SM."""
    if device in (None, "cpu", "auto", "host"):
        return "host"
    if not isinstance(device, str) or not (device == "cuda" or device.startswith("cuda:")):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', not {device!r}")
    index = device.partition(":")[2] or "0"
    if not index.isdigit():
        raise ValueError(f"device {device!r}: the GPU index must be a number")
    smi = shutil.which("nvidia-smi")
    if not smi:
        raise ValueError(f"device {device!r}: no NVIDIA driver here (nvidia-smi not found)")
    out = subprocess.run([smi, "--query-gpu=compute_cap", "--format=csv,noheader", f"--id={index}"],
                         capture_output=True, text=True)
    if out.returncode != 0 or not out.stdout.strip():
        raise ValueError(f"device {device!r}: no such GPU ({out.stderr.strip() or 'nvidia-smi found none'})")
    major, _, minor = out.stdout.strip().partition(".")
    sm = int(major) * 10 + int(minor or 0)
    for t in (90, 89, 86, 80):  # the newest CUDA target this GPU runs
        if sm >= t:
            return f"cuda-sm{t}"
    raise ValueError(f"device {device!r}: compute capability {out.stdout.strip()} is older than bitnetc's sm_80")


class BitNetModel:
    """A compiled model, loaded. `from_pretrained` / `from_gguf` / `from_safetensors` /
    `load_model` compile a model file or folder first (once: the .so is cached)."""

    def __init__(self, library_path, device="cpu", max_seq_len=None):
        self._lib = _capi.Library(library_path)
        if max_seq_len is not None and (isinstance(max_seq_len, bool) or not isinstance(max_seq_len, int)
                                        or max_seq_len <= 0):
            raise ValueError(f"max_seq_len must be a positive integer, not {max_seq_len!r}")
        handle = self._lib.model_load_with_params(None, _capi.LoadParams(max_seq_len or 0))
        if not handle:
            raise self._lib.error()
        self._handle = handle
        self._lock = threading.Lock()  # guards closing against calls in flight
        self.info = json.loads(self._lib.take_string(self._lib.model_info_json(handle)))
        self.device = self.info["device"] if device == "cpu" else device
        self.library_path = str(library_path)

    # ---- loading ----------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path, device="cpu", quantization="auto", quiet=False, max_seq_len=None, config=None):
        """A model file or folder (compiled on first use), or a compiled .so. `config`
        (a ModelConfig) gives device, max_seq_len and quantization at once."""
        if config is not None:
            device, max_seq_len, quantization = config.device, config.max_seq_len, config.quantization
        p = Path(path)
        if not p.exists():
            raise FileNotFoundError(f"{path}: no such file or directory")
        if p.suffix == ".so" and p.is_file():
            return cls(p, device, max_seq_len)
        layout = {"i2s": "i2_s", "i2_s": "i2_s", "tl1": "tl1", "tl2": "tl2", "auto": "auto", None: "auto"}.get(quantization)
        if layout is None:
            raise ValueError(f"quantization must be one of auto, i2s, tl1, tl2, not {quantization!r}")
        return cls(compiled_library(p, _target_for(device), layout, quiet=quiet), device, max_seq_len)

    from_gguf = from_pretrained
    from_safetensors = from_pretrained

    @classmethod
    async def from_pretrained_async(cls, path, **kwargs):
        return await asyncio.to_thread(cls.from_pretrained, path, **kwargs)

    def close(self):
        with self._lock:
            if self._handle:
                self._lib.model_free(self._handle)
                self._handle = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def handle(self):
        if not self._handle:
            raise ValueError("the model is closed")
        return self._handle

    # ---- facts ------------------------------------------------------------------------
    def num_parameters(self):
        return int(self.info["n_params"])

    @property
    def config(self):
        return dict(self.info)

    def tokenizer(self):
        return Tokenizer(self)

    # ---- generation -------------------------------------------------------------------
    def _params(self, max_new_tokens=100, temperature=0.8, top_k=None, top_p=None, min_p=None, repeat_penalty=None,
                seed=None, do_sample=None, lookup=None):
        # lookup=N: lookup decoding, drafting up to N tokens from the context's repeated
        # n-grams (bitnet.h); the same tokens as without it.
        if do_sample is False:
            temperature = 0.0
        return _capi.make_params(self._lib.default_params(), max_new_tokens, temperature, top_k, top_p, min_p,
                                 repeat_penalty, _capi.BITNET_SEED_RANDOM if seed is None else seed, lookup)

    def generate(self, prompt, max_new_tokens=100, temperature=0.8, **sampling):
        """The continuation of `prompt` (text), sampled (temperature <= 0: greedy)."""
        _check_prompt(prompt)
        params = self._params(max_new_tokens, temperature, **sampling)
        return self._lib.take_string(self._lib.generate(self.handle, prompt.encode("utf-8"), params))

    async def generate_async(self, prompt, **kwargs):
        return await asyncio.to_thread(self.generate, prompt, **kwargs)

    def generate_stream(self, prompt, max_new_tokens=100, temperature=0.8, **sampling):
        _check_prompt(prompt)
        return TokenStream(self, prompt, self._params(max_new_tokens, temperature, **sampling))

    def _batch_args(self, prompts, max_new_tokens, temperature, sampling):
        """The C arrays of a batch call: (n, prompts, params)."""
        prompts = list(prompts)
        for p in prompts:
            _check_prompt(p)
        n = len(prompts)
        params = (_capi.GenerateParams * n)(*[self._params(max_new_tokens, temperature, **sampling) for _ in prompts])
        return n, (ctypes_char_p * n)(*[p.encode("utf-8") for p in prompts]), params

    def generate_batch(self, prompts, max_new_tokens=100, temperature=0.8, **sampling):
        """Every prompt at once through the batched engine; each text equals its solo run
        with the same seed."""
        n, c_prompts, params = self._batch_args(prompts, max_new_tokens, temperature, sampling)
        if n == 0:
            return []
        outputs = (ctypes_void_p * n)()
        if self._lib.generate_batch(self.handle, n, c_prompts, params, outputs) != 0:
            raise self._lib.error()
        return [self._lib.take_string(outputs[i]) for i in range(n)]

    def generate_batch_tokens(self, prompts, max_new_tokens=100, temperature=0.8, **sampling):
        """generate_batch, giving each prompt's generated token ids."""
        n, c_prompts, params = self._batch_args(prompts, max_new_tokens, temperature, sampling)
        if n == 0:
            return []
        ids = (_capi.ctypes.POINTER(_capi.ctypes.c_int32) * n)()
        counts = (_capi.ctypes.c_int * n)()
        if self._lib.generate_batch_tokens(self.handle, n, c_prompts, params, ids, counts) != 0:
            raise self._lib.error()
        out = []
        for i in range(n):
            out.append(list(ids[i][:counts[i]]))
            _capi.free_piece(_capi.ctypes.cast(ids[i], _capi.ctypes.c_void_p))
        return out

    def chat(self, messages, max_new_tokens=100, temperature=0.8, **sampling):
        """The assistant's reply to `messages` (Message or {"role", "content"}), with the
        model's chat template; control tokens in the contents stay text."""
        arr = _chat_messages(messages)
        params = self._params(max_new_tokens, temperature, **sampling)
        return self._lib.take_string(self._lib.chat(self.handle, arr, len(arr), params))

    @property
    def last_seed(self):
        """The seed this thread's last generation on any model sampled with."""
        return int(self._lib.get_last_seed())


from ctypes import c_char_p as ctypes_char_p, c_void_p as ctypes_void_p  # noqa: E402


def _check_prompt(prompt):
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a str, not {type(prompt).__name__}")


def _chat_messages(messages):
    msgs = []
    for i, m in enumerate(messages):
        role, content = (m.role, m.content) if isinstance(m, Message) else (m.get("role"), m.get("content"))
        if not isinstance(role, str) or not isinstance(content, str):
            raise TypeError(f"messages[{i}] needs a str role and content")
        msgs.append(_capi.ChatMessage(role.encode("utf-8"), content.encode("utf-8")))
    return (_capi.ChatMessage * len(msgs))(*msgs)


class TokenStream:
    """Text pieces as the model generates them (never a split UTF-8 character): iterate
    it, or `async for` over it; `cancel()` ends it at its next piece."""

    def __init__(self, model, prompt, params):
        self._model = model
        self._lib = model._lib
        self._stream = self._lib.stream_create_with_params(model.handle, prompt.encode("utf-8"), params)
        if not self._stream:
            raise self._lib.error()
        self._active = True
        self._pieces = 0
        self._chars = 0
        self._started = time.perf_counter()
        self._first = None

    def __iter__(self):
        return self

    def __next__(self):
        if not self._active:
            raise StopIteration
        ptr = self._lib.stream_next(self._stream)
        if not ptr:
            code = self._lib.get_last_error_code()
            self._finish()
            if code != 0:
                raise self._lib.error()
            raise StopIteration
        piece = self._lib.take_string(ptr, free=_capi.free_piece)
        if self._first is None:
            self._first = time.perf_counter() - self._started
        self._pieces += 1
        self._chars += len(piece)
        return piece

    def __aiter__(self):
        return self

    async def __anext__(self):
        # StopIteration cannot cross a Future (asyncio hangs on it): a sentinel does.
        piece = await asyncio.to_thread(self._next_or_none)
        if piece is None:
            raise StopAsyncIteration
        return piece

    def _next_or_none(self):
        try:
            return self.__next__()
        except StopIteration:
            return None

    def cancel(self):
        if self._active:
            self._lib.stream_cancel(self._stream)

    def is_active(self):
        return self._active

    def get_stream_stats(self):
        return {"pieces": self._pieces, "characters": self._chars, "active": self._active,
                "seconds": time.perf_counter() - self._started, "time_to_first_piece": self._first}

    def _finish(self):
        if self._active:
            self._active = False
            self._lib.stream_free(self._stream)
            self._stream = None

    def __del__(self):
        try:
            self._finish()
        except Exception:
            pass


class Tokenizer:
    """A model's tokenizer, with the same ids as the model itself uses: `Tokenizer(model)`;
    a tokenizer file (tokenizer.model, tokenizer.json, a GGUF) or a checkpoint folder
    holding one, read by libbitnetc_tokenizer as bitnetc reads it (nothing compiled); or
    another model file, compiled as load_model does."""

    def __init__(self, source):
        self._model = None
        self._lib = self._handle = None  # libbitnetc_tokenizer's, for a tokenizer file
        if isinstance(source, BitNetModel):
            self._model = source
        elif isinstance(source, (str, os.PathLike)):
            p = Path(source)
            if not p.exists():
                raise FileNotFoundError(f"{source}: no such file or directory")
            file = _tokenizer_file(p)
            if file is None:
                self._model = BitNetModel.from_pretrained(p)
            else:
                self._lib = _capi.TokenizerLibrary.get(find_tokenizer_library())
                self._handle = self._lib.load(os.fsencode(file))
                if not self._handle:
                    raise self._lib.error()
        else:
            raise TypeError("Tokenizer takes a BitNetModel, a tokenizer file or a model path")
        if self._model is not None:
            lib, h = self._model._lib, self._model.handle
            self.n_words, self.bos_id = lib.vocab_size(h), lib.token_bos(h)
            self.eos_id, self.eot_id = lib.token_eos(h), lib.token_eot(h)
        else:
            lib, h = self._lib, self._handle
            self.n_words, self.bos_id, self.eos_id, self.eot_id = lib.n_vocab(h), lib.bos(h), lib.eos(h), lib.eot(h)

    def __del__(self):
        if getattr(self, "_handle", None):
            self._lib.free(self._handle)
            self._handle = None

    def encode(self, text, bos=True, eos=False, allow_special=False):
        raw = text.encode("utf-8")
        if self._model is not None:
            lib, h = self._model._lib, self._model.handle
            tokenize = lib.tokenize
        else:
            lib, h = self._lib, self._handle
            tokenize = lib.encode
        n = tokenize(h, raw, int(bos), int(allow_special), None, 0)
        if n < 0:
            raise lib.error()
        ids = (_capi.ctypes.c_int32 * max(n, 1))()
        tokenize(h, raw, int(bos), int(allow_special), ids, n)
        out = list(ids[:n])
        if eos and self.eos_id >= 0:
            out.append(self.eos_id)
        return out

    def decode(self, ids):
        ids = list(ids)
        arr = (_capi.ctypes.c_int32 * max(len(ids), 1))(*ids)
        if self._model is not None:
            lib, h = self._model._lib, self._model.handle
            return lib.take_string(lib.detokenize(h, arr, len(ids)))
        return self._lib.take_string(self._lib.decode(self._handle, arr, len(ids)))

    def chat_apply(self, dialog, add_assistant=True):
        """The dialog rendered with the tokenizer's chat template (bitnet_chat_apply)."""
        arr = _chat_messages(dialog)
        if self._model is not None:
            lib = self._model._lib
            return lib.take_string(lib.chat_apply(self._model.handle, arr, len(arr), int(add_assistant)))
        roles = (_capi.ctypes.c_char_p * max(len(arr), 1))(*[m.role for m in arr])
        contents = (_capi.ctypes.c_char_p * max(len(arr), 1))(*[m.content for m in arr])
        return self._lib.take_string(self._lib.chat_apply(self._handle, roles, contents, len(arr), int(add_assistant)))


def _tokenizer_file(path):
    """The tokenizer file a path names or holds (a checkpoint folder's tokenizer.json,
    else its tokenizer.model), or None for a model file that is not one (a bitllama2.c
    checkpoint, a compiled .so): that one is compiled."""
    p = Path(path)
    if p.is_dir():
        for name in ("tokenizer.json", "tokenizer.model"):
            if (p / name).is_file():
                return p / name
        return None
    if p.suffix in (".json", ".model"):
        return p
    with open(p, "rb") as f:
        return p if f.read(4) == b"GGUF" else None


def create_tokenizer(source):
    return Tokenizer(source)


def load_model(path, device="cpu", quantization="auto", quiet=False, max_seq_len=None, config=None):
    return BitNetModel.from_pretrained(path, device=device, quantization=quantization, quiet=quiet,
                                       max_seq_len=max_seq_len, config=config)


@dataclass
class Message:
    role: str
    content: str


class ChatFormat:
    """Dialogs rendered with the model's chat template."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer if isinstance(tokenizer, Tokenizer) else Tokenizer(tokenizer)

    def format_dialog(self, dialog, completion=True):
        return self.tokenizer.chat_apply(dialog, completion)

    def encode_dialog_prompt(self, dialog, completion=True):
        """The dialog's token ids, BOS first, the template's control tokens parsed."""
        return self.tokenizer.encode(self.format_dialog(dialog, completion), bos=True, allow_special=True)


@dataclass
class GenerationConfig:
    temperature: float = 0.8
    max_new_tokens: int = 100
    top_k: int = 40
    top_p: float = 0.95
    do_sample: bool = True
    seed: int = None
    repeat_penalty: float = 1.0

    def kwargs(self):
        return dict(max_new_tokens=self.max_new_tokens, temperature=self.temperature if self.do_sample else 0.0,
                    top_k=self.top_k, top_p=self.top_p, seed=self.seed, repeat_penalty=self.repeat_penalty)


@dataclass
class InferenceConfig(GenerationConfig):
    pass


@dataclass
class ModelConfig:
    device: str = "cpu"
    max_seq_len: int = None  # None: the model's context
    quantization: str = "auto"


class SimpleInference:
    def __init__(self, model, tokenizer=None, config=None):
        self.model = model
        self.tokenizer = tokenizer or Tokenizer(model)
        self.config = config or GenerationConfig()

    def generate(self, prompt, **overrides):
        return self.model.generate(prompt, **{**self.config.kwargs(), **overrides})

    def generate_stream(self, prompt, **overrides):
        return self.model.generate_stream(prompt, **{**self.config.kwargs(), **overrides})


@dataclass
class GenArgs:
    gen_length: int = 128
    temperature: float = 0.8
    top_p: float = 0.9
    use_sampling: bool = True
    seed: int = None


class FastGen:
    """Batched generation over token-id prompts, as the BitNet libraries' FastGen."""

    def __init__(self, model, gen_args):
        self.model = model
        self.gen_args = gen_args
        self.tokenizer = Tokenizer(model)

    @classmethod
    def build(cls, ckpt_dir, gen_args=None, device="cpu", **_):
        return cls(load_model(ckpt_dir, device=device), gen_args or GenArgs())

    def generate_all(self, prompts, use_cuda_graphs=None):
        """(stats, results): each prompt (token ids without BOS, or text) generated
        together through the batched engine; results[i] are the generated ids."""
        a = self.gen_args
        texts = [p if isinstance(p, str) else self.tokenizer.decode(p) for p in prompts]
        t0 = time.perf_counter()
        results = self.model.generate_batch_tokens(texts, max_new_tokens=a.gen_length,
                                                   temperature=a.temperature if a.use_sampling else 0.0,
                                                   top_p=a.top_p, seed=a.seed)
        seconds = time.perf_counter() - t0
        n = sum(len(r) for r in results)
        stats = {"seconds": seconds, "tokens": n, "tokens_per_second": n / seconds if seconds > 0 else 0.0}
        return stats, results


def benchmark_inference(model, tokenizer, prompts, max_new_tokens=32):
    per = []
    for p in prompts:
        stream = model.generate_stream(p, max_new_tokens=max_new_tokens, temperature=0.0)
        text = "".join(stream)
        st = stream.get_stream_stats()
        n = len(tokenizer.encode(text, bos=False)) if text else 0
        per.append({"prompt": p, "tokens": n, "seconds": st["seconds"], "time_to_first_token": st["time_to_first_piece"],
                    "tokens_per_second": n / st["seconds"] if st["seconds"] > 0 else 0.0})
    total_t = sum(r["seconds"] for r in per)
    total_n = sum(r["tokens"] for r in per)
    return {"per_prompt": per, "avg_tokens_per_second": total_n / total_t if total_t > 0 else 0.0,
            "total_tokens": total_n, "total_seconds": total_t}


class _ReferenceModel:
    """The reference interpreter (`bitnetc run`) over a model file: slow, exact."""

    def __init__(self, path):
        self.path = str(path)

    def generate(self, prompt, max_new_tokens=32, temperature=0.0, **_):
        if temperature > 0:
            raise ValueError("the reference model is run greedy (temperature 0)")
        out = subprocess.run([find_bitnetc(), "run", self.path, "-p", prompt, "-n", str(max_new_tokens), "--temp",
                              "0", "--json"], capture_output=True, text=True)
        if out.returncode != 0:
            raise BitNetError(-5, f"bitnetc run failed: {out.stderr.strip()}")
        return json.loads(out.stdout)["text"]


def reference_model(path):
    return _ReferenceModel(path)


def validate_outputs(model_a, model_b, tokenizer, prompts, max_new_tokens=16):
    rows = []
    for p in prompts:
        a = model_a.generate(p, max_new_tokens=max_new_tokens, temperature=0.0)
        b = model_b.generate(p, max_new_tokens=max_new_tokens, temperature=0.0)
        rows.append({"prompt": p, "a": a, "b": b, "match": a == b})
    return {"num_prompts": len(rows), "num_matches": sum(r["match"] for r in rows), "results": rows}


def get_system_info():
    flags = set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    flags.update(line.split(":", 1)[1].split())
    except OSError:
        pass
    targets = []
    try:
        out = subprocess.run([find_bitnetc(), "targets"], capture_output=True, text=True)
        targets = [l.split()[0] for l in out.stdout.splitlines()[1:] if l and not l.startswith(" ") and
                   not l.startswith("host")]
    except FileNotFoundError:
        pass
    gpu = None
    if shutil.which("nvidia-smi"):
        q = subprocess.run(["nvidia-smi", "--query-gpu=name,compute_cap", "--format=csv,noheader"],
                           capture_output=True, text=True)
        gpu = q.stdout.strip() or None
    return {"features": sorted(f for f in flags if f.startswith(("avx", "fma", "f16c", "asimd", "neon", "dotprod",
                                                                   "sse4"))),
            "machine": platform.machine(), "targets": targets, "gpu": gpu, "python": platform.python_version(),
            "bitnet_py": __version__}
