"""ctypes declarations of the C API (runtime_stub/api/bitnet.h) of a compiled model's .so.

One `Library` per loaded .so: each compiled model is its own shared object, with its own
copy of the runtime, loaded with RTLD_LOCAL so that several models live side by side.
ctypes releases the GIL for the length of every foreign call, so generation runs while
other Python threads do.
"""

import ctypes
import math

BITNET_SEED_RANDOM = 0xFFFFFFFFFFFFFFFF
API_VERSION = 4

ERROR_NAMES = {
    -1: "invalid argument",
    -2: "model mismatch",
    -3: "I/O error",
    -4: "prompt error",
    -5: "internal error",
}


class BitNetError(RuntimeError):
    """An error the C API reported: `code` (a BitNetError) and the library's message."""

    def __init__(self, code, message):
        super().__init__(f"{message} ({ERROR_NAMES.get(code, 'error')} {code})")
        self.code = code
        self.message = message


class GenerateParams(ctypes.Structure):
    _fields_ = [
        ("max_tokens", ctypes.c_int32),
        ("temperature", ctypes.c_float),
        ("top_k", ctypes.c_int32),
        ("top_p", ctypes.c_float),
        ("min_p", ctypes.c_float),
        ("repeat_penalty", ctypes.c_float),
        ("seed", ctypes.c_uint64),
        ("lookup", ctypes.c_int32),
    ]

MAX_LOOKUP = 64  # BITNET_MAX_LOOKUP


class LoadParams(ctypes.Structure):
    _fields_ = [("n_ctx", ctypes.c_int32)]


class ChatMessage(ctypes.Structure):
    _fields_ = [("role", ctypes.c_char_p), ("content", ctypes.c_char_p)]


_SIGNATURES = {
    # name: (restype, argtypes)
    "bitnet_version": (ctypes.c_int, []),
    "bitnet_model_load": (ctypes.c_void_p, [ctypes.c_char_p]),
    "bitnet_model_load_with_params": (ctypes.c_void_p, [ctypes.c_char_p, ctypes.POINTER(LoadParams)]),
    "bitnet_model_free": (None, [ctypes.c_void_p]),
    "bitnet_default_params": (GenerateParams, []),
    "bitnet_generate": (ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(GenerateParams)]),
    "bitnet_generate_batch": (
        ctypes.c_int,
        [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(GenerateParams),
         ctypes.POINTER(ctypes.c_void_p)],
    ),
    "bitnet_generate_batch_tokens": (
        ctypes.c_int,
        [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(GenerateParams),
         ctypes.POINTER(ctypes.POINTER(ctypes.c_int32)), ctypes.POINTER(ctypes.c_int)],
    ),
    "bitnet_stream_create_with_params": (
        ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(GenerateParams)]),
    "bitnet_stream_next": (ctypes.c_void_p, [ctypes.c_void_p]),
    "bitnet_stream_cancel": (None, [ctypes.c_void_p]),
    "bitnet_stream_free": (None, [ctypes.c_void_p]),
    "bitnet_tokenize": (
        ctypes.c_int,
        [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.c_int32), ctypes.c_int],
    ),
    "bitnet_detokenize": (ctypes.c_void_p, [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int32), ctypes.c_int]),
    "bitnet_vocab_size": (ctypes.c_int, [ctypes.c_void_p]),
    "bitnet_token_bos": (ctypes.c_int32, [ctypes.c_void_p]),
    "bitnet_token_eos": (ctypes.c_int32, [ctypes.c_void_p]),
    "bitnet_token_eot": (ctypes.c_int32, [ctypes.c_void_p]),
    "bitnet_model_info_json": (ctypes.c_void_p, [ctypes.c_void_p]),
    "bitnet_chat_template": (ctypes.c_char_p, [ctypes.c_void_p]),
    "bitnet_chat_apply": (ctypes.c_void_p, [ctypes.c_void_p, ctypes.POINTER(ChatMessage), ctypes.c_int, ctypes.c_int]),
    "bitnet_chat": (
        ctypes.c_void_p, [ctypes.c_void_p, ctypes.POINTER(ChatMessage), ctypes.c_int, ctypes.POINTER(GenerateParams)]),
    "bitnet_get_last_seed": (ctypes.c_uint64, []),
    "bitnet_free_string": (None, [ctypes.c_void_p]),
    "bitnet_get_last_error": (ctypes.c_char_p, []),
    "bitnet_get_last_error_code": (ctypes.c_int, []),
}

_libc = ctypes.CDLL(None)
_libc.free.argtypes = [ctypes.c_void_p]
_libc.free.restype = None


class Library:
    """The C API of one compiled .so."""

    def __init__(self, path):
        self.path = str(path)
        self._dll = ctypes.CDLL(self.path, mode=ctypes.RTLD_LOCAL)
        for name, (restype, argtypes) in _SIGNATURES.items():
            fn = getattr(self._dll, name)
            fn.restype = restype
            fn.argtypes = argtypes
            setattr(self, name[len("bitnet_"):], fn)
        if self.version() != API_VERSION:
            raise BitNetError(-5, f"{self.path}: C API version {self.version()}, bitnet_py speaks {API_VERSION}")

    def error(self):
        """The calling thread's last error as a BitNetError."""
        return BitNetError(self.get_last_error_code(), (self.get_last_error() or b"").decode("utf-8", "replace"))

    def take_string(self, ptr, free=None):
        """The text of a malloc'ed C string, freed; raises the last error for NULL."""
        if not ptr:
            raise self.error()
        try:
            return ctypes.string_at(ptr).decode("utf-8")
        finally:
            (free or self.free_string)(ptr)


_TOKENIZER_SIGNATURES = {
    "load": (ctypes.c_void_p, [ctypes.c_char_p]),
    "free": (None, [ctypes.c_void_p]),
    "last_error": (ctypes.c_char_p, []),
    "encode": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_int,
                              ctypes.POINTER(ctypes.c_int32), ctypes.c_int]),
    "decode": (ctypes.c_void_p, [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int32), ctypes.c_int]),
    "chat_apply": (ctypes.c_void_p, [ctypes.c_void_p, ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(ctypes.c_char_p),
                                     ctypes.c_int, ctypes.c_int]),
    "free_string": (None, [ctypes.c_void_p]),
    "n_vocab": (ctypes.c_int32, [ctypes.c_void_p]),
    "bos": (ctypes.c_int32, [ctypes.c_void_p]),
    "eos": (ctypes.c_int32, [ctypes.c_void_p]),
    "eot": (ctypes.c_int32, [ctypes.c_void_p]),
}


class TokenizerLibrary:
    """libbitnetc_tokenizer.so (tools/libbitnetc_tokenizer/bitnetc_tokenizer.h): a
    tokenizer file read as bitnetc reads it, without a compiled model."""

    _loaded = {}

    @classmethod
    def get(cls, path):
        if path not in cls._loaded:
            cls._loaded[path] = cls(path)
        return cls._loaded[path]

    def __init__(self, path):
        self._dll = ctypes.CDLL(str(path), mode=ctypes.RTLD_LOCAL)
        for name, (restype, argtypes) in _TOKENIZER_SIGNATURES.items():
            fn = getattr(self._dll, "bitnetc_tokenizer_" + name)
            fn.restype = restype
            fn.argtypes = argtypes
            setattr(self, name, fn)

    def error(self):
        return BitNetError(-4, (self.last_error() or b"").decode("utf-8", "replace"))

    def take_string(self, ptr):
        if not ptr:
            raise self.error()
        try:
            return ctypes.string_at(ptr).decode("utf-8")
        finally:
            self.free_string(ptr)


def free_piece(ptr):
    """Pieces from bitnet_stream_next are released with free() (bitnet.h)."""
    _libc.free(ptr)


def make_params(defaults, max_new_tokens=None, temperature=None, top_k=None, top_p=None, min_p=None,
                repeat_penalty=None, seed=None, lookup=None):
    """A GenerateParams from `defaults` and the given overrides, checked as Python users
    expect (ValueError naming the argument) before the library checks them again."""
    p = GenerateParams.from_buffer_copy(defaults)

    def number(name, value):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name} must be a number, not {type(value).__name__}")
        if not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, not {value}")
        return value

    if max_new_tokens is not None:
        if number("max_new_tokens", max_new_tokens) < 0 or int(max_new_tokens) != max_new_tokens:
            raise ValueError(f"max_new_tokens must be a non-negative integer, not {max_new_tokens}")
        p.max_tokens = int(max_new_tokens)
    if temperature is not None:
        p.temperature = number("temperature", temperature)
    if top_k is not None:
        p.top_k = int(number("top_k", top_k))
    if top_p is not None:
        if number("top_p", top_p) < 0:
            raise ValueError(f"top_p must be >= 0, not {top_p}")
        p.top_p = top_p
    if min_p is not None:
        if number("min_p", min_p) > 1:
            raise ValueError(f"min_p must be <= 1, not {min_p}")
        p.min_p = min_p
    if repeat_penalty is not None:
        if number("repeat_penalty", repeat_penalty) <= 0:
            raise ValueError(f"repeat_penalty must be > 0, not {repeat_penalty}")
        p.repeat_penalty = repeat_penalty
    if seed is not None:
        if int(seed) < 0:
            raise ValueError(f"seed must not be negative, not {seed}")
        p.seed = int(seed) & 0xFFFFFFFFFFFFFFFF
    if lookup is not None:
        if isinstance(lookup, bool) or not isinstance(lookup, int) or not 0 <= lookup <= MAX_LOOKUP:
            raise ValueError(f"lookup must be an integer from 0 (off) to {MAX_LOOKUP}, not {lookup!r}")
        p.lookup = lookup
    return p
