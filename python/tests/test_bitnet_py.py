"""bitnet_py against the reference interpreter (`bitnetc run`), on the bundled TinyStories
model and the HF tiny checkpoint (chat). ctest sets BITNETC, BITNET_MODEL_CACHE and
BITNETC_SHARED_DIR; run by hand: PYTHONPATH=python /usr/bin/python3 -m pytest python/tests
"""

import asyncio
import json
import math
import os
import subprocess
import threading
from pathlib import Path

import pytest

import bitnet_py as bitnet

SHARED = Path(os.environ.get("BITNETC_SHARED_DIR", Path(__file__).resolve().parents[3] / "shared"))
TINYSTORIES = SHARED / "models" / "tinystories-bitnet-3m" / "model.bin"
HF_TINY = SHARED / "golden" / "hf-bitnet-tiny" / "packed"
PROMPT = "Once upon a time"


def reference(path, prompt, n):
    out = subprocess.run([bitnet.find_bitnetc(), "run", str(path), "-p", prompt, "-n", str(n), "--temp", "0",
                          "--json"], capture_output=True, text=True, check=True, timeout=300)
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def model():
    m = bitnet.load_model(str(TINYSTORIES), quiet=True)
    yield m
    m.close()


def test_documented_snippet_equals_the_interpreter(model):
    tokenizer = bitnet.create_tokenizer(str(TINYSTORIES.parent / "tokenizer.model"))
    engine = bitnet.SimpleInference(model, tokenizer)
    ref = reference(TINYSTORIES, PROMPT, 32)
    assert engine.generate(PROMPT, temperature=0, max_new_tokens=32) == ref["text"]
    assert tokenizer.encode(PROMPT, bos=True, eos=False) == ref["prompt_tokens"]
    assert tokenizer.decode(ref["tokens"]).strip() == ref["text"].strip()
    assert tokenizer.n_words == 512 and tokenizer.bos_id == ref["prompt_tokens"][0]
    assert model.num_parameters() > 1_000_000 and model.device == "cpu"
    stream = engine.generate_stream(PROMPT, temperature=0, max_new_tokens=32)
    pieces = list(stream)
    assert "".join(pieces) == ref["text"] and len(pieces) > 1
    assert not stream.is_active() and stream.get_stream_stats()["pieces"] == len(pieces)


def test_the_second_load_hits_the_cache(model):
    cached = list(Path(os.environ["BITNET_MODEL_CACHE"]).glob("*/libmodel.so"))
    stamps = {p: p.stat().st_mtime_ns for p in cached}
    again = bitnet.BitNetModel.from_pretrained(str(TINYSTORIES))
    assert again.library_path in {str(p) for p in cached}
    assert {p: p.stat().st_mtime_ns for p in cached} == stamps
    again.close()


def test_cancel_after_three_pieces(model):
    stream = model.generate_stream(PROMPT, temperature=0, max_new_tokens=64)
    got = [next(stream) for _ in range(3)]
    stream.cancel()
    assert list(stream) == [] and not stream.is_active() and len(got) == 3


def test_async_streams_gather_and_time_out(model):
    solo = model.generate(PROMPT, temperature=0, max_new_tokens=24)

    async def collect():
        return "".join([p async for p in model.generate_stream(PROMPT, temperature=0, max_new_tokens=24)])

    async def main():
        texts = await asyncio.gather(collect(), collect(), collect())
        assert texts == [solo] * 3
        assert await model.generate_async(PROMPT, temperature=0, max_new_tokens=24) == solo
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(collect_slow(), timeout=0.05)

    async def collect_slow():
        async for _ in model.generate_stream(PROMPT, temperature=0, max_new_tokens=200):
            await asyncio.sleep(0.02)

    asyncio.run(main())


def test_fastgen_generate_all_equals_solo_runs(model):
    g = bitnet.FastGen(model, bitnet.GenArgs(gen_length=16, use_sampling=False))
    prompts = [PROMPT, "The little dog", "Lily and Tom"]
    stats, results = g.generate_all([g.tokenizer.encode(p, bos=False, eos=False) for p in prompts])
    assert stats["tokens"] == sum(len(r) for r in results)
    for p, ids in zip(prompts, results):
        assert g.tokenizer.decode(ids).lstrip(" ") == model.generate(p, temperature=0, max_new_tokens=16).lstrip(" ")
        assert g.tokenizer.decode(g.tokenizer.encode(p, bos=False)) == p
        assert len(ids) == 16
    # Sampled, with a seed: the batch equals the solo run with that seed.
    batch = model.generate_batch(prompts, max_new_tokens=12, temperature=0.8, seed=5)
    assert batch == [model.generate(p, max_new_tokens=12, temperature=0.8, seed=5) for p in prompts]


def test_lookup_decoding_changes_no_token(model):
    # lookup=N drafts from the context's repeated n-grams (bitnet.h): the same text,
    # greedy or seeded, whole, streamed and batched.
    greedy = model.generate(PROMPT, temperature=0, max_new_tokens=64)
    assert model.generate(PROMPT, temperature=0, max_new_tokens=64, lookup=4) == greedy
    assert "".join(model.generate_stream(PROMPT, temperature=0, max_new_tokens=64, lookup=4)) == greedy
    seeded = dict(max_new_tokens=48, temperature=0.8, seed=9, repeat_penalty=1.1)
    plain = model.generate_batch([PROMPT, "The little dog"], **seeded)
    assert model.generate_batch([PROMPT, "The little dog"], lookup=8, **seeded) == plain
    with pytest.raises(ValueError, match="lookup"):
        model.generate(PROMPT, lookup=65)


def test_threads_share_one_model(model):
    solo = model.generate(PROMPT, temperature=0, max_new_tokens=16)
    out = [None] * 4

    def work(i):
        out[i] = [model.generate(PROMPT, temperature=0, max_new_tokens=16) for _ in range(3)]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert out == [[solo] * 3] * 4


def test_validate_against_the_reference_interpreter(model):
    tok = bitnet.create_tokenizer(model)
    v = bitnet.validate_outputs(model, bitnet.reference_model(str(TINYSTORIES)), tok, [PROMPT, "The cat"])
    assert v["num_prompts"] == 2 and v["num_matches"] == 2
    bench = bitnet.benchmark_inference(model, tok, [PROMPT], max_new_tokens=8)
    assert bench["avg_tokens_per_second"] > 0 and bench["per_prompt"][0]["tokens"] > 0
    info = bitnet.get_system_info()
    assert "x86-64-avx2" in info["targets"] or info["machine"] != "x86_64"


def test_errors_name_what_is_wrong(model, tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.gguf"):
        bitnet.load_model(str(tmp_path / "nowhere.gguf"))
    with pytest.raises(ValueError, match="temperature"):
        model.generate(PROMPT, temperature=math.nan)
    with pytest.raises(ValueError, match="max_new_tokens"):
        model.generate(PROMPT, max_new_tokens=-1)
    with pytest.raises(ValueError, match="device"):
        bitnet.load_model(str(TINYSTORIES), device="tpu")
    with pytest.raises(bitnet.BitNetError) as e:
        model.generate("word " * 5000, max_new_tokens=4)
    assert e.value.code == -4 and "context" in e.value.message
    not_a_tokenizer = tmp_path / "tokenizer.json"
    not_a_tokenizer.write_text('{"model": {"type": "Unigram"}}')
    with pytest.raises(bitnet.BitNetError, match=r"tokenizer.json.*model.type"):
        bitnet.Tokenizer(str(not_a_tokenizer))
    with pytest.raises(FileNotFoundError, match="tokenizer.model"):
        bitnet.Tokenizer(str(tmp_path / "tokenizer.model"))
    with pytest.raises(bitnet.BitNetError, match="no chat template"):
        model.chat([bitnet.Message("user", "Hi")])


TEXTS = ["Hello world", "  Once upon a time, Tom said: \"hi\"!", "é漢字 🙂 <|eot_id|>", ""]


@pytest.mark.parametrize("source, model_path", [
    (TINYSTORIES.parent / "tokenizer.model", TINYSTORIES),
    (HF_TINY / "tokenizer.json", HF_TINY),
    (HF_TINY, HF_TINY),
    (SHARED / "golden" / "gguf" / "synth-b158" / "synth-b158-tq2_0.gguf",
     SHARED / "golden" / "gguf" / "synth-b158" / "synth-b158-tq2_0.gguf"),
], ids=["tokenizer.model", "tokenizer.json", "hf-folder", "gguf"])
def test_tokenizer_files_give_the_models_ids(source, model_path):
    """A tokenizer file is read without compiling anything, with the compiled model's ids."""
    from_file = bitnet.Tokenizer(str(source))
    assert from_file._model is None
    m = bitnet.load_model(str(model_path), quiet=True)
    own = bitnet.Tokenizer(m)
    assert (from_file.n_words, from_file.bos_id, from_file.eos_id, from_file.eot_id) == \
        (own.n_words, own.bos_id, own.eos_id, own.eot_id)
    for text in TEXTS:
        for special in (False, True):
            ids = from_file.encode(text, bos=True, allow_special=special)
            assert ids == own.encode(text, bos=True, allow_special=special), text
            assert from_file.decode(ids) == own.decode(ids)
    if m.info["chat_template"] != "none":
        dialog = [bitnet.Message(role="user", content="What is AI?")]
        assert bitnet.ChatFormat(from_file).encode_dialog_prompt(dialog) == \
            bitnet.ChatFormat(own).encode_dialog_prompt(dialog)
    with pytest.raises(bitnet.BitNetError, match="vocabulary"):
        from_file.decode([from_file.n_words])
    m.close()


def test_chat_on_the_hf_checkpoint():
    m = bitnet.BitNetModel.from_pretrained(str(HF_TINY), quiet=True)
    chat = bitnet.ChatFormat(bitnet.Tokenizer(m))
    dialog = [bitnet.Message(role="user", content="What is AI?")]
    assert chat.format_dialog(dialog) == "User: What is AI?<|eot_id|>Assistant: "
    tokens = chat.encode_dialog_prompt(dialog, completion=True)
    assert tokens[0] == chat.tokenizer.bos_id and 128009 in tokens
    assert m.chat(dialog, temperature=0, max_new_tokens=8) == m.generate(chat.format_dialog(dialog), temperature=0,
                                                                          max_new_tokens=8)
    m.close()


def test_model_config_shortens_the_context():
    m = bitnet.load_model(str(TINYSTORIES), config=bitnet.ModelConfig(device="cpu", max_seq_len=16), quiet=True)
    assert m.info["n_ctx"] == 16
    with pytest.raises(bitnet.BitNetError, match="context"):
        m.generate("one two three four five six seven eight nine ten eleven twelve", max_new_tokens=4)
    m.close()
    with pytest.raises(ValueError, match="max_seq_len"):
        bitnet.load_model(str(TINYSTORIES), max_seq_len=0)
    with pytest.raises(bitnet.BitNetError, match="n_ctx"):
        bitnet.load_model(str(TINYSTORIES), max_seq_len=1 << 30)
