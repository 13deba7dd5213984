# syntax=docker/dockerfile:1
# Multi-stage: dependencies are built once, the runtime image holds only what runs.
FROM python:3.11-slim AS deps
WORKDIR /build
COPY requirements.txt .
# CPU-only torch: the default index would pull a multi-GB CUDA build.
RUN pip install --no-cache-dir --prefix=/install \
        --extra-index-url https://download.pytorch.org/whl/cpu -r requirements.txt

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 levibot
COPY --from=deps /install /usr/local
WORKDIR /app
COPY --chown=levibot:levibot backend/__init__.py backend/
COPY --chown=levibot:levibot backend/src backend/src
COPY --chown=levibot:levibot backend/ml backend/ml
COPY --chown=levibot:levibot backend/risk backend/risk
COPY --chown=levibot:levibot backend/scripts backend/scripts
COPY --chown=levibot:levibot backend/engines.example.yaml backend/
RUN mkdir -p backend/data && chown levibot:levibot backend/data
USER levibot
ENV LEVIBOT_DATA_DIR=/app/backend/data PYTHONUNBUFFERED=1
VOLUME ["/app/backend/data"]
# Healthy while the registry mirror is fresh and at least one engine runs.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s \
    CMD python -c "import json,os,time,sys; p='/app/backend/data/engine_registry.json'; r=json.load(open(p)); sys.exit(0 if time.time()-os.path.getmtime(p)<10 and any(v['status']=='running' for v in r.values()) else 1)"
ENTRYPOINT ["python", "-m", "backend.src.engine_manager"]
CMD ["--symbols", "BTCUSDT,ETHUSDT,SOLUSDT", "--config", "backend/engines.example.yaml"]
