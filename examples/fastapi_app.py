"""An example web app over bitnet_py: POST /generate (JSON) and POST /stream (the text as
it is generated, chunk by chunk).

    BITNET_MODEL=models/tinystories-bitnet-3m/model.bin PYTHONPATH=python \\
        /usr/bin/python3 -m uvicorn examples.fastapi_app:app --host 127.0.0.1 --port 8000
    curl -s localhost:8000/generate -H 'content-type: application/json' \\
        -d '{"prompt": "Once upon a time", "temperature": 0}'

The model is compiled (once, cached) and loaded on the first request. Handlers are plain
functions, so FastAPI runs them on its thread pool: bitnet_py releases the GIL while it
generates, and the library serialises calls on one model.
"""

import os
from typing import Optional

from fastapi import FastAPI, HTTPException
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

import bitnet_py as bitnet


class GenerateRequest(BaseModel):
    prompt: str
    max_new_tokens: int = Field(64, ge=0, le=4096)
    temperature: float = 0.8
    top_k: Optional[int] = None
    top_p: Optional[float] = None
    seed: Optional[int] = Field(None, ge=0)


def create_app(model=None, model_path=None):
    """The app over `model` (a loaded BitNetModel), or over the model at `model_path`
    ($BITNET_MODEL, else the bundled TinyStories model), loaded on first use."""
    app = FastAPI(title="bitnet_py example")
    state = {"model": model}
    path = model_path or os.environ.get("BITNET_MODEL", "models/tinystories-bitnet-3m/model.bin")

    def loaded():
        if state["model"] is None:
            state["model"] = bitnet.load_model(path)
        return state["model"]

    def sampling(req):
        return dict(max_new_tokens=req.max_new_tokens, temperature=req.temperature, top_k=req.top_k, top_p=req.top_p,
                    seed=req.seed)

    def failed(e):
        if isinstance(e, ValueError):
            return HTTPException(status_code=422, detail=str(e))
        return HTTPException(status_code=400, detail=e.message)

    @app.post("/generate")
    def generate(req: GenerateRequest):
        m = loaded()
        try:
            text = m.generate(req.prompt, **sampling(req))
        except (ValueError, bitnet.BitNetError) as e:
            raise failed(e) from None
        return {"text": text, "seed": m.last_seed}

    @app.post("/stream")
    def stream(req: GenerateRequest):
        try:
            pieces = loaded().generate_stream(req.prompt, **sampling(req))
        except (ValueError, bitnet.BitNetError) as e:
            raise failed(e) from None
        return StreamingResponse(pieces, media_type="text/plain; charset=utf-8")

    @app.get("/info")
    def info():
        return loaded().info

    return app


app = create_app()
