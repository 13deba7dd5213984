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
COPY --chown=levibot:levibot backend/strategies backend/strategies
RUN mkdir -p backend/data && chown levibot:levibot backend/data
USER levibot
ENV LEVIBOT_DATA_DIR=/app/backend/data PYTHONUNBUFFERED=1
VOLUME ["/app/backend/data"]
EXPOSE 8000
# The default command runs the manager with its API on :8000; docker-compose.yml overrides
# the check for the services that run without one.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s CMD ["python", "-m", "backend.scripts.healthcheck", "api"]
ENTRYPOINT ["python", "-m", "backend.src.engine_manager"]
# API on all interfaces inside the container (publish the port on loopback: see docker-compose.yml)
ENV LEVIBOT_API_HOST=0.0.0.0
CMD ["--symbols", "BTCUSDT,ETHUSDT,SOLUSDT", "--config", "backend/engines.example.yaml"]
