"""examples/fastapi_app.py through FastAPI's test client: generate, the streamed endpoint,
info, and errors as HTTP statuses."""

import importlib.util
import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import bitnet_py as bitnet

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("BITNETC_SHARED_DIR", ROOT.parent / "shared"))
TINYSTORIES = SHARED / "models" / "tinystories-bitnet-3m" / "model.bin"


@pytest.fixture(scope="module")
def client_and_model():
    spec = importlib.util.spec_from_file_location("fastapi_app", ROOT / "examples" / "fastapi_app.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    model = bitnet.load_model(str(TINYSTORIES), quiet=True)
    yield TestClient(mod.create_app(model)), model
    model.close()


def test_generate_and_stream_give_the_models_text(client_and_model):
    client, model = client_and_model
    want = model.generate("Once upon a time", temperature=0, max_new_tokens=24)
    r = client.post("/generate", json={"prompt": "Once upon a time", "temperature": 0, "max_new_tokens": 24})
    assert r.status_code == 200 and r.json()["text"] == want
    s = client.post("/stream", json={"prompt": "Once upon a time", "temperature": 0, "max_new_tokens": 24})
    assert s.status_code == 200 and s.text == want
    seeded = client.post("/generate", json={"prompt": "The dog", "max_new_tokens": 12, "seed": 9}).json()
    assert seeded["seed"] == 9
    assert seeded["text"] == model.generate("The dog", max_new_tokens=12, temperature=0.8, seed=9)
    assert client.get("/info").json()["n_vocab"] == 512


def test_bad_requests_get_http_errors(client_and_model):
    client, _ = client_and_model
    assert client.post("/generate", json={"prompt": "x", "max_new_tokens": -1}).status_code == 422
    assert client.post("/generate", json={"temperature": 0}).status_code == 422  # no prompt
    r = client.post("/generate", json={"prompt": "word " * 5000, "max_new_tokens": 4})
    assert r.status_code == 400 and "context" in r.json()["detail"]
