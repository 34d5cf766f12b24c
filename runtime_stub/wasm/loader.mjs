// A bitnetc WebAssembly output's loader: an ES module, the same in node and in browsers.
// bitnetc writes it as NAME.mjs beside NAME.wasm (and NAME.weights with
// --weights=external), with those names filled in below.
//
//   import { load } from "./model.mjs";
//   const model = await load();                  // or load({ wasm, weights, maxMemoryMB, nCtx })
//   const { text } = await model.generate("Once upon a time", { maxTokens: 64, temperature: 0 });
//   for await (const piece of model.stream(prompt, { signal })) ...
//   await model.tokenize(text), await model.detokenize(ids), model.info, model.memoryBytes, model.free()
//
// As a script, `node model.mjs ARGS` is the native output's command line (the same
// flags, text and --json), run in the module.
//
// Errors are thrown Errors whose `code` says their kind: "prompt" (invalid UTF-8, lone
// surrogates, longer than the context), "invalid_argument" (an option), "io" (a file or
// URL that cannot be read), "out_of_memory" (past maxMemoryMB), "runtime" (anything
// else: a weights file of another model, say). The module runs C++ that traps on its first error
// (runtime_stub/wasm/wasm_api.cpp says why); the loader then instantiates it afresh on
// the next call, so a model stays usable after any error.

const WASM_FILE = "@BITNETC_WASM_FILE@";
const WEIGHTS_FILE = "@BITNETC_WEIGHTS_FILE@";

const isNode = typeof process === "object" && !!(process.versions && process.versions.node);
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8");
const kPageBytes = 65536;
const kMaxPages = 65536;  // wasm32: 4 GiB

function bitnetError(message, code) {
  const e = new Error(message);
  e.code = code;
  return e;
}

// ---- bytes from paths, URLs and buffers ------------------------------------------------

async function readBytes(source, what) {
  if (source instanceof Uint8Array) return source;
  if (source instanceof ArrayBuffer) return new Uint8Array(source);
  if (ArrayBuffer.isView(source)) return new Uint8Array(source.buffer, source.byteOffset, source.byteLength);
  const name = String(source);
  try {
    const isUrl = source instanceof URL || /^[a-z][a-z0-9+.-]*:/i.test(name);
    if (isNode && (!isUrl || name.startsWith("file:"))) {
      const fs = await import("node:fs/promises");
      return new Uint8Array(await fs.readFile(isUrl ? new URL(name) : name));
    }
    const response = await fetch(name);
    if (!response.ok) throw new Error(`HTTP ${response.status} ${response.statusText}`);
    return new Uint8Array(await response.arrayBuffer());
  } catch (e) {
    throw bitnetError(`${what} ${name}: cannot read: ${e.message}`, "io");
  }
}

// The minimum size (pages) of the memory a module imports, from its import section.
function importedMemoryPages(bytes) {
  let p = 8;
  const leb = () => {
    let value = 0, scale = 1, b;
    do {
      b = bytes[p++];
      value += (b & 0x7f) * scale;
      scale *= 128;
    } while (b & 0x80);
    return value;
  };
  while (p < bytes.length) {
    const id = bytes[p++];
    const size = leb();
    const end = p + size;
    if (id === 2) {
      for (let n = leb(); n > 0; --n) {
        for (let names = 0; names < 2; ++names) {  // module and field (p += leb() would add to p's old value)
          const length = leb();
          p += length;
        }
        const kind = bytes[p++];
        if (kind === 0) leb();  // a function: its type
        else if (kind === 1) { p++; if (leb() & 1) leb(); leb(); }  // a table: type, limits
        else if (kind === 2) { const flags = leb(), min = leb(); if (flags & 1) leb(); return min; }
        else if (kind === 3) p += 2;  // a global
      }
    }
    p = end;
  }
  throw bitnetError("the module imports no memory: it is not a bitnetc output", "runtime");
}

// ---- the little of WASI the runtime uses ----------------------------------------------

class WasiExit extends Error {
  constructor(code) {
    super(`exit ${code}`);
    this.exitCode = code;
  }
}

const ERRNO_BADF = 8, ERRNO_NOSYS = 52, ERRNO_SPIPE = 70;

function randomFill(view) {
  for (let at = 0; at < view.length; at += 65536) globalThis.crypto.getRandomValues(view.subarray(at, at + 65536));
}

// Standard output and error: node's file descriptors (synchronously, so that the order
// of the two streams holds), or the console line by line in a browser. In node the
// command line's files (-f, --prompts, --chat-template) are read through `fs`: "/" is
// the module's one folder, read-only, and node's working folder its own.
function defaultIo() {
  if (isNode) {
    return {
      fs: null,
      write(fd, bytes) { this.fs.writeSync(fd, bytes); },
      read(bytes) {
        try { return this.fs.readSync(0, bytes); } catch (e) { if (e.code === "EOF") return 0; throw e; }
      },
      folders: ["/"],
    };
  }
  const pending = { 1: "", 2: "" };
  return {
    write(fd, bytes) {
      pending[fd] += decoder.decode(bytes, { stream: true });
      let nl;
      while ((nl = pending[fd].indexOf("\n")) >= 0) {
        (fd === 1 ? console.log : console.warn)(pending[fd].slice(0, nl));
        pending[fd] = pending[fd].slice(nl + 1);
      }
    },
    read() { return 0; },
  };
}

const ERRNO_OF_NODE = { ENOENT: 44, EACCES: 2, EISDIR: 31, ENOTDIR: 54, ELOOP: 32, ENAMETOOLONG: 37, EPERM: 63 };
const ERRNO_IO = 29, ERRNO_NOTCAPABLE = 76;
const FILETYPE_CHAR = 2, FILETYPE_DIR = 3, FILETYPE_REGULAR = 4, FILETYPE_SYMLINK = 7;

function wasiImports(getMemory, io) {
  const view = () => new DataView(getMemory().buffer);
  const u8 = () => new Uint8Array(getMemory().buffer);
  const iovecs = (iovs, count) => {
    const v = view(), list = [];
    for (let i = 0; i < count; ++i) list.push([v.getUint32(iovs + 8 * i, true), v.getUint32(iovs + 8 * i + 4, true)]);
    return list;
  };
  // Files: the folders the io lends (fd 3, 4, ...) and the files opened under them.
  const folders = io.folders || [];
  const files = new Map();  // wasi fd -> node fd
  let nextFd = 3 + folders.length;
  const pathAt = (dirFd, ptr, len) => {
    const folder = folders[dirFd - 3];
    if (folder === undefined) return null;
    const rel = decoder.decode(u8().slice(ptr, ptr + len));
    return folder === "/" ? "/" + rel : rel;
  };
  const nodeErrno = (e) => ERRNO_OF_NODE[e.code] || ERRNO_IO;
  const writeFilestat = (buf, st) => {
    const v = view();
    for (let i = 0; i < 64; i += 8) v.setBigUint64(buf + i, 0n, true);
    v.setBigUint64(buf, BigInt(st.dev), true);
    v.setBigUint64(buf + 8, BigInt(st.ino), true);
    v.setUint8(buf + 16, st.isFile() ? FILETYPE_REGULAR : st.isDirectory() ? FILETYPE_DIR
                           : st.isCharacterDevice() ? FILETYPE_CHAR : st.isSymbolicLink() ? FILETYPE_SYMLINK : 0);
    v.setBigUint64(buf + 24, BigInt(st.nlink), true);
    v.setBigUint64(buf + 32, BigInt(st.size), true);
    for (const [at, ms] of [[40, st.atimeMs], [48, st.mtimeMs], [56, st.ctimeMs]])
      v.setBigUint64(buf + at, BigInt(Math.round(ms)) * 1000000n, true);
  };
  const wasi = {
    args_get: () => 0,
    args_sizes_get: (count, size) => { view().setUint32(count, 0, true); view().setUint32(size, 0, true); return 0; },
    environ_get: () => 0,
    environ_sizes_get: (count, size) => { view().setUint32(count, 0, true); view().setUint32(size, 0, true); return 0; },
    clock_res_get: (id, res) => { view().setBigUint64(res, 1000n, true); return 0; },
    clock_time_get: (id, precision, time) => {
      const ns = id === 0 ? BigInt(Date.now()) * 1000000n : BigInt(Math.round(performance.now() * 1e6));
      view().setBigUint64(time, ns, true);
      return 0;
    },
    fd_prestat_get: (fd, buf) => {
      const folder = folders[fd - 3];
      if (folder === undefined) return ERRNO_BADF;
      view().setUint8(buf, 0);  // a folder
      view().setUint32(buf + 4, encoder.encode(folder).length, true);
      return 0;
    },
    fd_prestat_dir_name: (fd, ptr, len) => {
      const folder = folders[fd - 3];
      if (folder === undefined) return ERRNO_BADF;
      u8().set(encoder.encode(folder).subarray(0, len), ptr);
      return 0;
    },
    path_open: (dirFd, dirFlags, ptr, len, oflags, rightsBase, rightsInherit, fdFlags, fdOut) => {
      const path = pathAt(dirFd, ptr, len);
      if (path === null) return ERRNO_BADF;
      if (oflags & (1 | 8)) return ERRNO_NOTCAPABLE;  // create, truncate: the files are read-only
      try {
        const nodeFd = io.fs.openSync(path, "r");
        const fd = nextFd++;
        files.set(fd, nodeFd);
        view().setUint32(fdOut, fd, true);
        return 0;
      } catch (e) {
        return nodeErrno(e);
      }
    },
    path_filestat_get: (dirFd, flags, ptr, len, buf) => {
      const path = pathAt(dirFd, ptr, len);
      if (path === null) return ERRNO_BADF;
      try {
        writeFilestat(buf, flags & 1 ? io.fs.statSync(path) : io.fs.lstatSync(path));
        return 0;
      } catch (e) {
        return nodeErrno(e);
      }
    },
    fd_filestat_get: (fd, buf) => {
      if (!files.has(fd)) return ERRNO_BADF;
      writeFilestat(buf, io.fs.fstatSync(files.get(fd)));
      return 0;
    },
    fd_write: (fd, iovs, count, written) => {
      if (fd !== 1 && fd !== 2) return ERRNO_BADF;
      let total = 0;
      for (const [ptr, len] of iovecs(iovs, count)) {
        io.write(fd, u8().slice(ptr, ptr + len));
        total += len;
      }
      view().setUint32(written, total, true);
      return 0;
    },
    fd_read: (fd, iovs, count, read) => {
      if (fd !== 0 && !files.has(fd)) return ERRNO_BADF;
      let total = 0;
      for (const [ptr, len] of iovecs(iovs, count)) {
        const into = new Uint8Array(getMemory().buffer, ptr, len);
        let n;
        try {
          n = fd === 0 ? io.read(into) : io.fs.readSync(files.get(fd), into, 0, len, null);
        } catch (e) {
          return nodeErrno(e);
        }
        total += n;
        if (n < len) break;
      }
      view().setUint32(read, total, true);
      return 0;
    },
    fd_close: (fd) => {
      if (files.has(fd)) io.fs.closeSync(files.get(fd));
      files.delete(fd);
      return 0;
    },
    fd_seek: () => ERRNO_SPIPE,
    fd_fdstat_get: (fd, stat) => {
      const kind = fd <= 2 ? FILETYPE_CHAR : files.has(fd) ? FILETYPE_REGULAR : folders[fd - 3] !== undefined ? FILETYPE_DIR : -1;
      if (kind < 0) return ERRNO_BADF;
      const v = view();
      v.setUint8(stat, kind);
      v.setUint16(stat + 2, 0, true);
      v.setBigUint64(stat + 8, 0xffffffffffffffffn, true);
      v.setBigUint64(stat + 16, 0xffffffffffffffffn, true);
      return 0;
    },
    random_get: (buf, len) => { randomFill(new Uint8Array(getMemory().buffer, buf, len)); return 0; },
    proc_exit: (code) => { throw new WasiExit(code); },
    sched_yield: () => 0,
  };
  return new Proxy(wasi, { get: (t, k) => (k in t ? t[k] : () => ERRNO_NOSYS) });
}

// ---- one instance of the module -------------------------------------------------------

class Instance {
  static async create(module, pages, io) {
    const self = new Instance();
    self.memory = new WebAssembly.Memory({ initial: pages.min, maximum: pages.max });
    self.maxBytes = pages.max * kPageBytes;
    const imports = { env: { memory: self.memory }, wasi_snapshot_preview1: wasiImports(() => self.memory, io) };
    self.x = (await WebAssembly.instantiate(module, imports)).exports;
    self.trapped = false;
    self.call((x) => x._initialize());
    return self;
  }

  // Runs f(exports); a trap becomes the runtime's error, and the instance is spent.
  call(f) {
    try {
      return f(this.x);
    } catch (e) {
      if (!(e instanceof WebAssembly.RuntimeError) && !(e instanceof RangeError)) throw e;
      this.trapped = true;
      throw this.errorOf(e);
    }
  }

  errorOf(trap) {
    let kind = "", message = "";
    try {
      kind = this.cString(this.x.bitnetc_wasm_error_kind());
      message = this.cString(this.x.bitnetc_wasm_error_message());
    } catch { /* the trap left too little to ask */ }
    const cap = `the module's memory cap is ${this.maxBytes / 1048576} MB (load's maxMemoryMB)`;
    if (kind === "out_of_memory") return bitnetError(`${message}: ${cap}`, kind);
    if (kind) return bitnetError(message, kind === "usage" ? "invalid_argument" : kind);
    if (this.memory.buffer.byteLength + 16 * kPageBytes > this.maxBytes)
      return bitnetError(`out of memory: ${cap}, and the module reached it`, "out_of_memory");
    return bitnetError(`the module stopped: ${trap.message}`, "runtime");
  }

  // Usage errors keep their kind for the command line.
  lastErrorKind() { try { return this.cString(this.x.bitnetc_wasm_error_kind()); } catch { return ""; } }

  cString(ptr) {
    const bytes = new Uint8Array(this.memory.buffer);
    let end = ptr;
    while (bytes[end] !== 0) ++end;
    return decoder.decode(bytes.subarray(ptr, end));
  }

  result(ptr) {
    return decoder.decode(new Uint8Array(this.memory.buffer, ptr, this.x.bitnetc_wasm_result_size()));
  }

  // Copies bytes into the module's memory for f(ptr, size); the copy is freed after.
  withBytes(bytes, f) {
    const ptr = this.call((x) => x.bitnetc_wasm_alloc(bytes.length));
    new Uint8Array(this.memory.buffer, ptr, bytes.length).set(bytes);
    try {
      return f(ptr, bytes.length);
    } finally {
      if (!this.trapped) this.x.bitnetc_wasm_free(ptr);
    }
  }

  // Hands the weights file's bytes over (kept for the instance's life).
  setWeights(bytes, name) {
    const ptr = this.call((x) => x.bitnetc_wasm_alloc(bytes.length));
    new Uint8Array(this.memory.buffer, ptr, bytes.length).set(bytes);
    const nameBytes = encoder.encode(name);
    this.withBytes(nameBytes, (np, nn) => this.call((x) => x.bitnetc_wasm_set_weights(ptr, bytes.length, np, nn)));
  }

  // The native command line: main(argc, argv); its exit status.
  runMain(args) {
    const pointers = args.map((a) => {
      const b = encoder.encode(a + "\0");
      const p = this.call((x) => x.bitnetc_wasm_alloc(b.length));
      new Uint8Array(this.memory.buffer, p, b.length).set(b);
      return p;
    });
    const argv = this.call((x) => x.bitnetc_wasm_alloc(4 * (pointers.length + 1)));
    const v = new DataView(this.memory.buffer);
    pointers.forEach((p, i) => v.setUint32(argv + 4 * i, p, true));
    v.setUint32(argv + 4 * pointers.length, 0, true);
    return this.call((x) => x.bitnetc_wasm_main(pointers.length, argv));
  }
}

// ---- options ----------------------------------------------------------------------------

function checkPrompt(fn, prompt) {
  if (typeof prompt !== "string") throw bitnetError(`${fn}: the prompt must be a string`, "invalid_argument");
  const lone = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.exec(prompt);
  if (lone)
    throw bitnetError(`${fn}: the prompt holds a lone UTF-16 surrogate (U+${lone[0].charCodeAt(0).toString(16).toUpperCase()}` +
                      ` at index ${lone.index}), which is not text`, "prompt");
}

function generateOptions(fn, o = {}) {
  if (o === null || typeof o !== "object") throw bitnetError(`${fn}: options must be an object`, "invalid_argument");
  const bad = (field, want) => bitnetError(`${fn}: options.${field} ${want}`, "invalid_argument");
  const number = (field, fallback, ok, want) => {
    const v = o[field] === undefined ? fallback : o[field];
    if (typeof v !== "number" || !Number.isFinite(v) || !ok(v)) throw bad(field, want);
    return v;
  };
  const integer = (field, fallback, ok, want) => {
    const v = number(field, fallback, ok, want);
    if (!Number.isInteger(v)) throw bad(field, want);
    return v;
  };
  let seed;
  if (o.seed === undefined || o.seed === -1) {
    const r = new BigUint64Array(1);
    randomFill(new Uint8Array(r.buffer));
    seed = r[0];
  } else if ((typeof o.seed === "number" && Number.isSafeInteger(o.seed) && o.seed >= 0) ||
             (typeof o.seed === "bigint" && o.seed >= 0n && o.seed < 1n << 64n)) {
    seed = BigInt(o.seed);
  } else {
    throw bad("seed", "must be an integer from 0 to 2^64-1 (or -1: random)");
  }
  const stop = o.stop === undefined ? [] : typeof o.stop === "string" ? [o.stop] : o.stop;
  if (!Array.isArray(stop) || stop.some((s) => typeof s !== "string" || s === ""))
    throw bad("stop", "must be a string or an array of non-empty strings");
  if (o.signal !== undefined && (o.signal === null || typeof o.signal.aborted !== "boolean"))
    throw bad("signal", "must be an AbortSignal");
  return {
    maxTokens: integer("maxTokens", 128, (v) => v >= 0 && v <= 2 ** 31 - 1, "must be an integer >= 0"),
    temperature: number("temperature", 0.8, () => true, "must be a finite number (<= 0: greedy)"),
    topK: integer("topK", 40, (v) => Math.abs(v) < 2 ** 31, "must be an integer (<= 0: no limit)"),
    topP: number("topP", 0.95, (v) => v >= 0, "must be a finite number >= 0 (>= 1: off)"),
    minP: number("minP", 0.05, (v) => v <= 1, "must be a finite number <= 1 (<= 0: off)"),
    repeatPenalty: number("repeatPenalty", 1.0, (v) => v > 0, "must be a finite number > 0 (1: off)"),
    repeatLastN: integer("repeatLastN", 64, (v) => v >= 0 && v < 2 ** 31, "must be an integer >= 0"),
    // Lookup decoding's drafts at most (the same tokens as without it; 0: off).
    lookup: integer("lookup", 0, (v) => v >= 0 && v <= 64, "must be an integer from 0 (off) to 64"),
    seed,
    stop,
    signal: o.signal,
  };
}

// Holds back text that may be the start of a stop string; cuts at the first one.
class StopFilter {
  constructor(stops) {
    this.stops = stops;
    this.held = "";
  }
  push(piece) {
    this.held += piece;
    let cut = -1;
    for (const s of this.stops) {
      const at = this.held.indexOf(s);
      if (at >= 0 && (cut < 0 || at < cut)) cut = at;
    }
    if (cut >= 0) return { text: this.held.slice(0, cut), hit: true };
    let keep = 0;
    for (const s of this.stops)
      for (let n = Math.min(s.length - 1, this.held.length); n > keep; --n)
        if (this.held.endsWith(s.slice(0, n))) { keep = n; break; }
    const text = this.held.slice(0, this.held.length - keep);
    this.held = this.held.slice(this.held.length - keep);
    return { text, hit: false };
  }
  flush() {
    const text = this.held;
    this.held = "";
    return text;
  }
}

// Lets the event loop run (an abort, a repaint) between two tokens.
function yieldToEventLoop() {
  if (isNode) return new Promise((resolve) => setImmediate(resolve));
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => resolve();
    channel.port2.postMessage(0);
  });
}

function abortError(signal) {
  return signal.reason instanceof Error ? signal.reason : new DOMException("the generation was aborted", "AbortError");
}

// ---- the model --------------------------------------------------------------------------

class Model {
  #module; #pages; #weights; #weightsName; #nCtx; #io; #instance = null; #queue = Promise.resolve(); #freed = false;

  constructor(module, pages, weights, weightsName, nCtx, io) {
    this.#module = module;
    this.#pages = pages;
    this.#weights = weights;
    this.#weightsName = weightsName;
    this.#nCtx = nCtx;
    this.#io = io;
    this.info = null;
  }

  // The instance, made afresh after a trap: weights handed over, the model loaded.
  async #ready() {
    if (this.#freed) throw bitnetError("the model was freed", "invalid_argument");
    if (this.#instance && !this.#instance.trapped) return this.#instance;
    this.#instance = null;
    const inst = await Instance.create(this.#module, this.#pages, this.#io);
    if (this.#weights) inst.setWeights(this.#weights, this.#weightsName);
    inst.call((x) => x.bitnetc_wasm_load(this.#nCtx));
    this.info = JSON.parse(inst.result(inst.call((x) => x.bitnetc_wasm_info())));
    this.#instance = inst;
    return inst;
  }

  // Calls run one at a time, in the order they were made.
  #serialize(f) {
    const run = this.#queue.then(f);
    this.#queue = run.catch(() => {});
    return run;
  }

  async start() {
    await this.#ready();
    return this;
  }

  // The memory the module holds now, in bytes.
  get memoryBytes() { return this.#instance ? this.#instance.memory.buffer.byteLength : 0; }

  tokenize(text, { addBos = true, parseSpecial = false } = {}) {
    checkPrompt("tokenize", text);
    return this.#serialize(async () => {
      const inst = await this.#ready();
      const json = inst.withBytes(encoder.encode(text), (p, n) =>
        inst.result(inst.call((x) => x.bitnetc_wasm_tokenize(p, n, addBos ? 1 : 0, parseSpecial ? 1 : 0))));
      return JSON.parse(json);
    });
  }

  detokenize(ids) {
    if (!Array.isArray(ids) || ids.some((t) => !Number.isInteger(t) || t < -(2 ** 31) || t >= 2 ** 31))
      throw bitnetError("detokenize: ids must be an array of integers", "invalid_argument");
    return this.#serialize(async () => {
      const inst = await this.#ready();
      const bytes = new Uint8Array(new Int32Array(ids).buffer);
      return inst.withBytes(bytes, (p) => inst.result(inst.call((x) => x.bitnetc_wasm_detokenize(p, ids.length))));
    });
  }

  // Generates the whole answer: { text, tokens, promptTokens, finishReason, timings }.
  async generate(prompt, options = {}) {
    let text = "";
    const summary = {};
    for await (const piece of this.#pieces("generate", prompt, options, summary)) text += piece;
    return { text, tokens: summary.tokens, promptTokens: summary.prompt_tokens, finishReason: summary.finishReason,
             timings: { promptSeconds: summary.prompt_seconds, decodeSeconds: summary.decode_seconds,
                        drafted: summary.drafted, accepted: summary.accepted } };
  }

  // The answer piece by piece (never a split character); options.signal aborts it.
  stream(prompt, options = {}) { return this.#pieces("stream", prompt, options, {}); }

  async *#pieces(fn, prompt, options, summary) {
    checkPrompt(fn, prompt);
    const o = generateOptions(fn, options);
    // Holds the model for the whole generation: calls made after it wait for its end.
    let release;
    const held = new Promise((resolve) => { release = resolve; });
    const turn = this.#queue;
    this.#queue = turn.then(() => held);
    await turn;
    try {
      const inst = await this.#ready();
      inst.withBytes(encoder.encode(prompt), (p, n) => inst.call((x) =>
        x.bitnetc_wasm_begin(p, n, o.maxTokens, o.temperature, o.topK, o.topP, o.minP, o.repeatPenalty,
                             o.repeatLastN, o.seed, o.lookup)));
      const stops = new StopFilter(o.stop);
      let ended = false, hit = false;
      try {
        for (;;) {
          if (o.signal && o.signal.aborted) throw abortError(o.signal);
          const piece = inst.call((x) => x.bitnetc_wasm_next());
          if (!piece) break;
          const out = stops.push(inst.result(piece));
          if (out.text) yield out.text;
          if ((hit = out.hit)) break;
          await yieldToEventLoop();
        }
        if (!hit) {
          const tail = stops.flush();
          if (tail) yield tail;
        }
        Object.assign(summary, JSON.parse(inst.result(inst.call((x) => x.bitnetc_wasm_end()))));
        ended = true;
        summary.finishReason = hit || summary.stopped ? "stop" : "length";
      } finally {
        if (!ended && !inst.trapped) inst.call((x) => x.bitnetc_wasm_end());
      }
    } finally {
      release();
    }
  }

  // Drops the module's instance and memory; the model is unusable after.
  free() {
    this.#freed = true;
    this.#instance = null;
    this.#weights = null;
  }
}

export async function load(options = {}) {
  if (options === null || typeof options !== "object") throw bitnetError("load: options must be an object", "invalid_argument");
  const { maxMemoryMB, nCtx = 0 } = options;
  if (maxMemoryMB !== undefined && !(Number.isFinite(maxMemoryMB) && maxMemoryMB > 0))
    throw bitnetError("load: maxMemoryMB must be a number > 0", "invalid_argument");
  if (!Number.isInteger(nCtx) || nCtx < 0 || nCtx >= 2 ** 31)
    throw bitnetError("load: nCtx must be an integer >= 0 (0: the model's context)", "invalid_argument");
  if (options.weights !== undefined && WEIGHTS_FILE === null)
    throw bitnetError("load: weights: this module holds its weights itself (compiled without --weights=external)",
                      "invalid_argument");
  const io = options.io || defaultIo();
  if (isNode && io.fs === null) io.fs = await import("node:fs");
  const wasmSource = options.wasm !== undefined ? options.wasm : new URL(WASM_FILE, import.meta.url);
  const wasmBytes = await readBytes(wasmSource, "wasm");
  let module;
  try {
    module = await WebAssembly.compile(wasmBytes);
  } catch (e) {
    throw bitnetError(`wasm ${wasmSource instanceof Uint8Array ? "(bytes)" : String(wasmSource)}: not a WebAssembly ` +
                      `module: ${e.message}`, "io");
  }
  const pages = { min: importedMemoryPages(wasmBytes), max: kMaxPages };
  if (maxMemoryMB !== undefined) {
    pages.max = Math.min(kMaxPages, Math.floor((maxMemoryMB * 1048576) / kPageBytes));
    if (pages.max < pages.min)
      throw bitnetError(`load: maxMemoryMB ${maxMemoryMB}: the module needs ${Math.ceil(pages.min / 16)} MB to start`,
                        "out_of_memory");
  }
  let weights = null, weightsName = "";
  if (WEIGHTS_FILE !== null) {
    const source = options.weights !== undefined ? options.weights : new URL(WEIGHTS_FILE, import.meta.url);
    weights = await readBytes(source, "weights");
    weightsName = source instanceof Uint8Array || source instanceof ArrayBuffer || ArrayBuffer.isView(source)
      ? "the weights given" : String(source);
  }
  const model = new Model(module, pages, weights, weightsName, nCtx, io);
  return options.cli ? { module, pages, weights, weightsName, io } : model.start();
}

// ---- `node model.mjs ARGS` -------------------------------------------------------------

async function commandLine(args) {
  const path = await import("node:path");
  const url = await import("node:url");
  const at = args.indexOf("--weights");
  const options = { cli: true };
  if (at >= 0 && at + 1 < args.length && WEIGHTS_FILE !== null) options.weights = args[at + 1];
  let parts;
  try {
    parts = await load(options);
  } catch (e) {
    process.stderr.write(`error: ${e.message}\n`);
    return 1;
  }
  const argv = [path.basename(url.fileURLToPath(import.meta.url)), ...args];
  let inst = null;
  for (let resuming = false; ; resuming = true) {
    inst = null;
    try {
      inst = await Instance.create(parts.module, parts.pages, parts.io);
      if (parts.weights) inst.setWeights(parts.weights, parts.weightsName);
      inst.withBytes(encoder.encode(process.cwd() + "\0"), (p) => inst.call((x) => x.bitnetc_wasm_chdir(p)));
      if (resuming) inst.call((x) => x.bitnetc_wasm_resume_interactive());
      return inst.runMain(argv);
    } catch (e) {
      // -i: a bad line trapped the instance (a C++ throw); report it as the native loop
      // does and go on with the next line in a fresh instance (wasm/wasm_api.cpp).
      if (!(e instanceof WasiExit) && inst && inst.trapped && inst.x.bitnetc_wasm_in_interactive_line()) {
        process.stderr.write(`error: ${e.message}\n`);
        continue;
      }
      return commandLineError(e, inst);
    }
  }
}

// The command line's exit status for an error that ends it, and its message.
function commandLineError(e, inst) {
  if (e instanceof WasiExit) return e.exitCode;
  if (inst && inst.lastErrorKind() === "usage") {
    process.stderr.write(`error: ${e.message}\n(${inst.cString(inst.x.bitnetc_wasm_usage_line())})\n`);
    return 2;
  }
  process.stderr.write(`error: ${e.message}\n`);
  return 1;
}

if (isNode && process.argv[1]) {
  const { realpathSync } = await import("node:fs");
  const { pathToFileURL } = await import("node:url");
  let main = false;
  try { main = pathToFileURL(realpathSync(process.argv[1])).href === import.meta.url; } catch { /* not a file */ }
  if (main) process.exitCode = await commandLine(process.argv.slice(2));
}
