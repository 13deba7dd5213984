# syntax=docker/dockerfile:1
# Two images from one file (docker build --target runtime|trainer):
#   runtime  manager, engines, API and dashboard, RQ workers, Telegram bot: requirements-runtime.txt
#            (no torch, lightning, optuna, LightGBM, SciPy: models run through ONNX Runtime)
#   trainer  nightly retrain, tuner, backtests with the TFT: requirements.txt (the full install)
# Size: python -m backend.scripts.image_size (installs and prunes each target's packages as below).
ARG PYTHON=python:3.11-slim

FROM ${PYTHON} AS runtime-deps
WORKDIR /build
COPY requirements-runtime.txt backend/scripts/prune_install.py ./
# --no-deps: requirements-runtime.txt lists every package (checked by backend/tests/test_requirements.py)
RUN pip install --no-cache-dir --no-compile --no-deps --prefix=/install -r requirements-runtime.txt \
    && python prune_install.py /install

FROM ${PYTHON} AS trainer-deps
WORKDIR /build
COPY requirements.txt backend/scripts/prune_install.py ./
# CPU-only torch: the default index would pull a multi-GB CUDA build.
RUN pip install --no-cache-dir --no-compile --prefix=/install \
        --extra-index-url https://download.pytorch.org/whl/cpu -r requirements.txt \
    && python prune_install.py /install

# The application's code, once, for both targets.
FROM scratch AS code
COPY backend/__init__.py /app/backend/
COPY backend/src /app/backend/src
COPY backend/ml /app/backend/ml
COPY backend/risk /app/backend/risk
COPY backend/scripts /app/backend/scripts
COPY backend/strategies /app/backend/strategies
COPY backend/engines.example.yaml /app/backend/

FROM ${PYTHON} AS base
RUN useradd --create-home --uid 10001 levibot && mkdir -p /app/backend/data && chown levibot:levibot /app/backend/data
WORKDIR /app
# Byte code is compiled on first use into the data volume, not shipped in the image.
ENV LEVIBOT_DATA_DIR=/app/backend/data PYTHONUNBUFFERED=1 PYTHONPYCACHEPREFIX=/app/backend/data/.pycache
VOLUME ["/app/backend/data"]

FROM base AS trainer
COPY --from=trainer-deps /install /usr/local
COPY --from=code --chown=levibot:levibot /app /app
USER levibot
# The nightly job (a cron or a Kubernetes CronJob runs the container): collect, tune, validate, promote.
ENV LEVIBOT_PYTHON=python
ENTRYPOINT ["backend/scripts/nightly_retrain.sh"]

# Last, so a plain `docker build .` gives the runtime image.
FROM base AS runtime
COPY --from=runtime-deps /install /usr/local
COPY --from=code --chown=levibot:levibot /app /app
USER levibot
EXPOSE 8000
# The default command runs the manager with its API on :8000; docker-compose.yml overrides
# the check for the services that run without one.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s CMD ["python", "-m", "backend.scripts.healthcheck", "api"]
ENTRYPOINT ["python", "-m", "backend.src.engine_manager"]
# API on all interfaces inside the container (publish the port on loopback: see docker-compose.yml)
ENV LEVIBOT_API_HOST=0.0.0.0
CMD ["--symbols", "BTCUSDT,ETHUSDT,SOLUSDT", "--config", "backend/engines.example.yaml"]
