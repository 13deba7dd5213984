#!/usr/bin/env bash
# Nightly retrain: collect the last day -> update features -> tune over the last N days ->
# validate against production -> promote -> report (metrics + alert).
# cron: 0 3 * * * cd "$LEVIBOT_HOME" && backend/scripts/nightly_retrain.sh >> backend/data/logs/nightly_retrain.log 2>&1
# Settings come from the environment (LEVIBOT_*): LEVIBOT_ENGINE_CONFIG or LEVIBOT_RETRAIN_SYMBOLS,
# LEVIBOT_RETRAIN_SOURCE (live:binance | replay:DIR), LEVIBOT_RETRAIN_TRIALS (50), LEVIBOT_RETRAIN_DAYS (30),
# LEVIBOT_RETRAIN_TIMEFRAME (5m; 1h trains on hourly candles: give it LEVIBOT_RETRAIN_DAYS=365 or more),
# LEVIBOT_RETRAIN_TUNER_ARGS (extra auto_tuner arguments, e.g. "--tft-epochs 2").
set -euo pipefail

cd "$(dirname "$0")/../.."
PY="${LEVIBOT_PYTHON:-.venv/bin/python}"
DATA="${LEVIBOT_DATA_DIR:-backend/data}"
export LEVIBOT_DATA_DIR="$DATA"
mkdir -p "$DATA/logs"

# One run at a time: the kernel drops the lock if this script dies, even by kill -9.
exec 9>"$DATA/retrain.lock"
if ! flock -n 9; then
    echo "$(date -u +%FT%TZ) another retrain holds $DATA/retrain.lock; not starting"
    exit 75
fi

started=$(date +%s)
step="start"
version=""
log() { echo "$(date -u +%FT%TZ) [$step] $*"; }
elapsed() { echo $(( $(date +%s) - started )); }
on_error() {
    local code=$?
    trap - ERR
    log "FAILED with exit code $code; production model untouched"
    "$PY" -m backend.ml.research.nightly report failure --duration "$(elapsed)" --step "$step" --version "$version" \
        --detail "step $step failed with exit code $code" || true
    exit "$code"
}
trap on_error ERR

step="plan"
symbols=$("$PY" -m backend.ml.research.nightly symbols)
log "symbols: $symbols; source: ${LEVIBOT_RETRAIN_SOURCE:-live:binance}"

tf="${LEVIBOT_RETRAIN_TIMEFRAME:-5m}"  # checked with every other setting by the step above
holdout_days=1  # the window the gate judges the candidate on, which it is not trained on: 288 5m bars
[ "$tf" = "5m" ] || holdout_days=14  # or two weeks of longer candles (a day of hourly ones says nothing)

step="collect"
log "collecting the last day of $tf candles"
"$PY" -m backend.ml.research.data_collector --days 1 --symbols "$symbols" --timeframe "$tf" \
    --source "${LEVIBOT_RETRAIN_SOURCE:-live:binance}"

step="features"
log "updating features"
"$PY" -m backend.src.models.feature_pipeline --update --ohlcv-dir "$DATA/ohlcv"

step="tune"
range=$("$PY" -m backend.ml.research.nightly range)
read -r start end <<< "$range"
log "tuning on $start .. $end"
version=$("$PY" -m backend.ml.research.auto_tuner --symbol "$symbols" --start-date "$start" --end-date "$end" \
    --trials "${LEVIBOT_RETRAIN_TRIALS:-50}" --objective sharpe --holdout-days "$holdout_days" \
    --ohlcv-dir "$DATA/ohlcv" --timeframe "$tf" \
    ${LEVIBOT_RETRAIN_TUNER_ARGS:-} | tail -n 1)
log "candidate $version"

step="validate"
log "validating $version against production"
code=0  # 1 = kept as a candidate: a verdict, not an error (an `||` list keeps the ERR trap out of it)
verdict=$("$PY" -m backend.ml.research.validate_model --model "$version" --promote) || code=$?
log "verdict: $verdict"
if [ "$code" -eq 1 ]; then
    step="notify"
    "$PY" -m backend.ml.research.nightly report rejected --duration "$(elapsed)" --step validate --version "$version" \
        --detail "kept as candidate: $(echo "$verdict" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["reason"])')"
    log "done: $version kept as a candidate"
    exit 0
elif [ "$code" -ne 0 ]; then
    false  # -> on_error
fi

step="notify"
"$PY" -m backend.ml.research.nightly report success --duration "$(elapsed)" --step deploy --version "$version" \
    --detail "promoted $version"
log "done: $version in production after $(elapsed)s"
