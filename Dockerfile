# OncoGraph API, CPU image. Every build step is scripts/setup.sh, which CI runs natively.
#   docker build -t oncograph .                      (weights: qwen2.5-1.5b, 0.5b + minilm)
#   docker build --build-arg ONCOGRAPH_WEIGHTS="qwen2.5-0.5b minilm" -t oncograph:small .
#   docker run -p 8000:8000 oncograph                 (then GET /ready, POST /v1/classify)
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    UV_NO_CACHE=1 \
    HOME=/home/app \
    ONCOGRAPH_CACHE=/home/app/.cache/oncograph \
    ONCOGRAPH_DATA=/home/app/data \
    ONCOGRAPH_TORCH_INDEX=https://download.pytorch.org/whl/cpu \
    PORT=8000

# non-root; uid 1000 is what Hugging Face Spaces runs containers as
RUN useradd --create-home --uid 1000 app
WORKDIR /home/app/oncograph
USER app

# Layer 1, cached until the dependencies or the weight pins change: venv, deps, weights,
# disease vocabulary. The editable install picks up the code copied in layer 2.
ARG ONCOGRAPH_WEIGHTS="qwen2.5-1.5b qwen2.5-0.5b minilm"
COPY --chown=app:app pyproject.toml README.md ./
COPY --chown=app:app scripts/setup.sh scripts/setup.sh
COPY --chown=app:app tools/__init__.py tools/weights.py tools/
RUN ONCOGRAPH_EXTRAS="" ONCOGRAPH_FETCH_VOCAB=1 ONCOGRAPH_REDIS=0 ONCOGRAPH_WEIGHTS="$ONCOGRAPH_WEIGHTS" \
    bash scripts/setup.sh

# Layer 2: the code, configs and LoRA adapters (.dockerignore keeps out the rest)
COPY --chown=app:app . .

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=180s --retries=3 \
    CMD [".venv/bin/python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '8000'), timeout=4)"]
# one worker process: the models are loaded once and concurrent requests share batches
CMD ["sh", "-c", "exec .venv/bin/uvicorn graph.api:app --host 0.0.0.0 --port ${PORT} --timeout-keep-alive 30"]
