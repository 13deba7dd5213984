"""Temporal Fusion Transformer (pytorch-forecasting v1 API, trained with ``lightning.pytorch``)
on price history and volatility; its quantile forecast becomes a probability of an up move.

One model across symbols: rows carry a ``symbol`` column (the group id). The target is the
per-bar log return ``ret_1``; the model forecasts its quantiles for the next ``horizon``
bars from the last ``encoder`` bars (returns and volatility are unknown in the future, so
they only feed the encoder). P(up over the horizon) = Φ(Σ medians / √Σ σ²), σ per step from
the inter-quartile range — the steps are treated as independent, an approximation.

Inference never calls ``predict()`` (it builds a Trainer each call): the windows are built in numpy
as the dataset would build them (same scalers, same per-window target normalisation) and run through
the network. Saved models carry the network twice: ``tft.pt`` (torch, for training and research) and
``tft.onnx`` with ``tft_runtime.json`` (the scalers as plain numbers), exported and checked against
torch when the model is saved. Loading prefers the ONNX file through ONNX Runtime: engines never
import torch, lightning or pytorch-forecasting (``LEVIBOT_TFT_BACKEND=torch`` forces torch). The
heavy imports happen on first use, not at module import.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from backend.src.core.progress import Progress
from backend.src.models.backends import Backends
from backend.src.models.base import Model, training_threads

log = logging.getLogger(__name__)
# torch's C++ log lines ("[W... shape_type_inference.cpp] Warning: ..." from the ONNX exporter): errors only,
# unless the environment asks otherwise; read when torch loads, which happens in this module's functions.
os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")
QUANTILES = [0.1, 0.25, 0.5, 0.75, 0.9]
# the network's inputs, in the order the ONNX graph takes them
INPUTS = ("encoder_cat", "encoder_cont", "encoder_target", "encoder_lengths", "decoder_cat", "decoder_cont",
          "decoder_target", "decoder_lengths", "decoder_time_idx", "groups", "target_scale")
ONNX_TOLERANCE = 1e-4  # max |P(up) ONNX − P(up) torch| accepted when a model is exported
DEFAULTS: dict[str, Any] = {"hidden_size": 16, "attention_head_size": 1, "dropout": 0.1, "encoder": 48,
                            "horizon": 12, "epochs": 2, "batch_size": 256, "learning_rate": 0.01,
                            "max_train_samples": 20000, "seed": 7, "center_target": False}


class TFTModel(Model):
    name = "tft"
    sequence = True

    def __init__(self, features: list[str], **params: Any) -> None:
        super().__init__(features, **{**DEFAULTS, **params})
        self.net: Any = None  # torch (after fit, or loaded with LEVIBOT_TFT_BACKEND=torch)
        self.session: Any = None  # ONNX Runtime (a loaded model)
        self.runtime: dict[str, Any] | None = None  # what the windows need: reals, scalers, centring
        self.dataset_parameters: dict[str, Any] | None = None  # pytorch-forecasting's (torch and research only)

    @property
    def backend(self) -> str:
        return "onnx" if self.session is not None else "torch" if self.net is not None else "none"

    # --- data ---------------------------------------------------------------------------
    def _frame(self, X: pd.DataFrame) -> pd.DataFrame:  # noqa: N803
        df = X[self.features].copy()
        df["symbol"] = X["symbol"].astype(str) if "symbol" in X.columns else "ALL"
        df["time_idx"] = df.groupby("symbol").cumcount()
        df[self.features] = df[self.features].astype("float32").fillna(0.0)
        return df.reset_index(drop=True)

    def _dataset(self, df: pd.DataFrame) -> Any:
        from pytorch_forecasting import TimeSeriesDataSet  # noqa: PLC0415
        from pytorch_forecasting.data.encoders import EncoderNormalizer, NaNLabelEncoder  # noqa: PLC0415

        p = self.params
        return TimeSeriesDataSet(
            df, time_idx="time_idx", target="ret_1", group_ids=["symbol"],
            max_encoder_length=int(p["encoder"]), min_encoder_length=int(p["encoder"]),
            max_prediction_length=int(p["horizon"]), min_prediction_length=int(p["horizon"]),
            time_varying_unknown_reals=self.features, add_relative_time_idx=True,
            categorical_encoders={"__group_id__symbol": NaNLabelEncoder(add_nan=True)},
            # not centred: a window centred on its own mean makes a weak network forecast that mean
            # (momentum over the encoder), which these markets punish (docs/AI_FUSION_ARCHITECTURE.md)
            target_normalizer=EncoderNormalizer(method="standard", center=bool(p["center_target"])),
            allow_missing_timesteps=False,
        )

    # --- training -----------------------------------------------------------------------
    def fit(self, X: pd.DataFrame, y: pd.Series) -> TFTModel:  # noqa: N803
        import lightning.pytorch as pl  # noqa: PLC0415
        import torch  # noqa: PLC0415
        from pytorch_forecasting import TemporalFusionTransformer  # noqa: PLC0415
        from pytorch_forecasting.metrics import QuantileLoss  # noqa: PLC0415

        p = self.params
        pl.seed_everything(int(p["seed"]), workers=False, verbose=False)
        torch.set_num_threads(training_threads())
        df = self._frame(X.dropna(subset=self.features))
        ds = self._dataset(df)
        params = ds.get_parameters()
        n = len(ds)
        if n == 0:
            raise ValueError("tft: not enough rows for one encoder + horizon window")
        sampler_idx = np.linspace(0, n - 1, min(n, int(p["max_train_samples"]))).astype(int)
        loader = torch.utils.data.DataLoader(
            torch.utils.data.Subset(ds, sampler_idx.tolist()), batch_size=int(p["batch_size"]), shuffle=True,
            collate_fn=ds._collate_fn, num_workers=0)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*is an instance of `nn.Module`.*")
            self.net = TemporalFusionTransformer.from_dataset(
                ds, hidden_size=int(p["hidden_size"]), attention_head_size=int(p["attention_head_size"]),
                dropout=float(p["dropout"]), hidden_continuous_size=max(8, int(p["hidden_size"]) // 2),
                learning_rate=float(p["learning_rate"]), loss=QuantileLoss(QUANTILES), log_interval=-1,
                reduce_on_plateau_patience=1000)
        progress = Progress(int(p["epochs"]), f"tft training ({len(sampler_idx):,} windows)", unit="epoch")

        class EpochProgress(pl.Callback):  # a line (or a bar's step) per epoch: a long fit is never silent
            def on_train_epoch_end(self, trainer: pl.Trainer, module: Any) -> None:
                loss = trainer.callback_metrics.get("train_loss_epoch", trainer.callback_metrics.get("train_loss"))
                progress.update(note=f"loss {float(loss):.4f}" if loss is not None else "")

        with quiet_lightning():  # "GPU available: False", "💡 Tip: ... litlogger", each twice (its handler and ours)
            trainer = pl.Trainer(max_epochs=int(p["epochs"]), accelerator="cpu", devices=1, logger=False,
                                 enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                                 gradient_clip_val=0.1, callbacks=[EpochProgress()])
        with warnings.catch_warnings(), quiet_lightning():
            warnings.simplefilter("ignore")
            trainer.fit(self.net, train_dataloaders=loader)
        progress.close()
        self.net.eval()
        self.runtime = runtime_of(params, list(self.net.hparams["x_reals"]))
        self.dataset_parameters = params
        self.fitted = True
        return self

    # --- inference ----------------------------------------------------------------------
    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        """P(up over the horizon) for each row, decided with data up to that row only (rows
        with fewer than ``encoder`` bars of history before them get NaN)."""
        out = np.full(len(X), np.nan)
        if self.runtime is None or self.backend == "none" or not set(self.features) <= set(X.columns):
            return out
        if "symbol" not in X.columns:  # one series (an engine's window): no grouping, no frame built per candle
            vals = X[self.features].to_numpy(dtype=np.float32)
            return self._predict_values(np.where(np.isnan(vals), np.float32(0), vals))
        df = self._frame(X)
        symbols = df["symbol"].to_numpy()
        for sym in pd.unique(symbols):
            rows = np.flatnonzero(symbols == sym)
            out[rows] = self._predict_fast(df.iloc[rows].reset_index(drop=True))
        return out

    def _quantiles_to_prob(self, q: np.ndarray) -> np.ndarray:
        med = q[:, :, 2].sum(axis=1)
        sd = np.sqrt((((q[:, :, 3] - q[:, :, 1]) / 1.349) ** 2).sum(axis=1)) + 1e-12
        return np.asarray(_normal_cdf(med / sd), dtype=float)

    def windows(self, vals: np.ndarray, ends: np.ndarray) -> list[np.ndarray]:
        """The network's inputs (``INPUTS`` order) for the windows ending at ``ends``: numpy only."""
        assert self.runtime is not None  # noqa: S101 - checked by the caller
        rt = self.runtime
        enc, hor = int(self.params["encoder"]), int(self.params["horizon"])
        k, reals = len(ends), rt["x_reals"]
        win = vals[(ends - enc + 1)[:, None] + np.arange(enc)[None, :]]  # (K, enc, F)
        target = np.ascontiguousarray(win[:, :, self.features.index("ret_1")], dtype=np.float32)
        center = target.mean(-1, dtype=np.float32) if rt["centred"] else np.zeros(k, np.float32)
        scale = (target.std(-1, ddof=1, dtype=np.float32) + np.finfo(np.float32).eps).astype(np.float32)
        rel = (np.arange(-enc, hor, dtype=np.float32) / enc)[None, :]
        cont = np.zeros((k, enc + hor, len(reals)), dtype=np.float32)
        for j, name in enumerate(reals):
            if name == "relative_time_idx":
                cont[:, :, j] = rel
                continue
            raw = np.concatenate([win[:, :, self.features.index(name)], np.zeros((k, hor), np.float32)], axis=1)
            if name == "ret_1":
                cont[:, :, j] = (raw - center[:, None]) / scale[:, None]
            else:
                mean, sd = rt["scalers"][name]
                cont[:, :, j] = (raw - np.float32(mean)) / np.float32(sd)
        return [np.zeros((k, enc, 0), np.int64), cont[:, :enc], target, np.full(k, enc, np.int64),
                np.zeros((k, hor, 0), np.int64), np.ascontiguousarray(cont[:, enc:]), np.zeros((k, hor), np.float32),
                np.full(k, hor, np.int64), (ends[:, None] + 1 + np.arange(hor)[None, :]).astype(np.int64),
                np.zeros((k, 1), np.int64), np.stack([center, scale], -1).astype(np.float32)]

    def quantiles(self, inputs: list[np.ndarray]) -> np.ndarray:
        """The network's quantile forecast (K, horizon, 5): through ONNX Runtime, else torch."""
        if self.session is not None:
            return run_onnx(self.session, inputs)
        import torch  # noqa: PLC0415

        x = {name: torch.from_numpy(a) for name, a in zip(INPUTS, inputs, strict=True)}
        with torch.inference_mode():
            return np.asarray(self.net(x)["prediction"].numpy())

    def _predict_fast(self, df: pd.DataFrame, chunk: int = 2048) -> np.ndarray:
        """Every full-encoder window at once (no TimeSeriesDataSet per call)."""
        return self._predict_values(df[self.features].to_numpy(dtype=np.float32), chunk)

    def _predict_values(self, vals: np.ndarray, chunk: int = 2048) -> np.ndarray:
        """``_predict_fast`` over one series' feature values (float32, NaN already 0)."""
        enc = int(self.params["encoder"])
        res = np.full(len(vals), np.nan)
        if len(vals) < enc:
            return res
        ends = np.arange(enc - 1, len(vals))
        for start in range(0, len(ends), chunk):
            e = ends[start:start + chunk]
            res[e] = self._quantiles_to_prob(self.quantiles(self.windows(vals, e)))
        return res

    def predict_with_dataset(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        """The same through pytorch-forecasting's TimeSeriesDataSet (slow; the reference the fast
        path is checked against)."""
        import torch  # noqa: PLC0415
        from pytorch_forecasting import TimeSeriesDataSet  # noqa: PLC0415

        df = self._frame(X)
        enc, hor = int(self.params["encoder"]), int(self.params["horizon"])
        res = np.full(len(df), np.nan)
        pad = pd.DataFrame({c: np.zeros(hor, dtype="float32") for c in self.features})
        pad["symbol"], pad["time_idx"] = df["symbol"].iloc[0], np.arange(len(df), len(df) + hor)
        full = pd.concat([df, pad], ignore_index=True)
        ds = TimeSeriesDataSet.from_parameters(self.dataset_parameters, full, predict=False, stop_randomization=True)
        with torch.inference_mode():
            for x, _y in ds.to_dataloader(train=False, batch_size=1024, num_workers=0):
                decided = x["decoder_time_idx"][:, 0].numpy() - 1  # the bar whose close decided
                res[decided] = self._quantiles_to_prob(self.net(x)["prediction"].numpy())
        res[: enc - 1] = np.nan
        return res

    # --- artifacts: torch state dict + dataset parameters; ONNX graph + runtime numbers -------------
    def _save_state(self, directory: Path) -> list[Path]:
        if self.net is None or self.dataset_parameters is None or self.runtime is None:
            return []
        import torch  # noqa: PLC0415

        path = directory / "tft.pt"
        torch.save({"state_dict": self.net.state_dict(), "dataset_parameters": self.dataset_parameters,
                    "hparams": dict(self.net.hparams)}, path)
        runtime = directory / "tft_runtime.json"
        runtime.write_text(json.dumps(self.runtime, indent=1, sort_keys=True))
        return [path, runtime, self.export_onnx(directory / "tft.onnx")]

    def export_onnx(self, path: Path, check_windows: int = 256) -> Path:
        """The network as an ONNX graph (opset 17), checked on ``check_windows`` windows of noise against
        torch: refused (ValueError) when P(up) differs by more than ``ONNX_TOLERANCE``."""
        import onnxruntime as ort  # noqa: PLC0415
        import torch  # noqa: PLC0415

        net = self.net

        class Positional(torch.nn.Module):
            """The network with its dict input as positional tensors (what ONNX export takes)."""

            def __init__(self) -> None:
                super().__init__()
                self.net = net

            def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
                return self.net(dict(zip(INPUTS, tensors, strict=True)))["prediction"]  # type: ignore[no-any-return]

        enc = int(self.params["encoder"])
        rng = np.random.default_rng(0)
        vals = (rng.standard_normal((enc + check_windows, len(self.features))) * 0.01).astype(np.float32)
        inputs = self.windows(vals, np.arange(enc - 1, enc - 1 + check_windows))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about python control flow on shapes
            torch.onnx.export(Positional().eval(), tuple(torch.from_numpy(a) for a in inputs), str(path),
                              input_names=list(INPUTS), output_names=["prediction"], opset_version=17,
                              dynamic_axes={n: {0: "windows"} for n in (*INPUTS, "prediction")}, dynamo=False)
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        onnx_p = self._quantiles_to_prob(run_onnx(session, inputs))
        torch_p = self._quantiles_to_prob(self.quantiles(inputs))
        diff = float(np.max(np.abs(onnx_p - torch_p)))
        if diff > ONNX_TOLERANCE:
            path.unlink(missing_ok=True)
            raise ValueError(f"tft: the ONNX export differs from torch by {diff:.2e} in P(up)")
        log.info("tft exported to ONNX: max |P(up) difference| %.1e on %d windows", diff, check_windows)
        return path

    def _load_state(self, directory: Path, meta: dict[str, Any], backends: Backends) -> None:
        onnx, runtime, pt = directory / "tft.onnx", directory / "tft_runtime.json", directory / "tft.pt"
        if onnx.exists() and runtime.exists() and backends.tft != "torch":
            import onnxruntime as ort  # noqa: PLC0415

            options = ort.SessionOptions()
            options.intra_op_num_threads = 1  # one engine, one core's share: engines run side by side
            self.session = ort.InferenceSession(str(onnx), options, providers=["CPUExecutionProvider"])
            self.runtime = json.loads(runtime.read_text())
            return
        if not pt.exists():
            return
        import torch  # noqa: PLC0415
        from pytorch_forecasting import TemporalFusionTransformer  # noqa: PLC0415

        blob = torch.load(pt, weights_only=False)  # sha256-verified by the registry before this runs
        self.dataset_parameters = blob["dataset_parameters"]
        hparams = dict(blob["hparams"])
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*is an instance of `nn.Module`.*")
            self.net = TemporalFusionTransformer(**hparams)
        self.net.load_state_dict(blob["state_dict"])
        self.net.eval()
        self.runtime = runtime_of(self.dataset_parameters, list(hparams["x_reals"]))


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Lightning's banners and tips off: its loggers at WARNING (it also prints them through its own handler)."""
    loggers = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric", "pytorch_lightning")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


_normal_cdf = np.vectorize(NormalDist().cdf, otypes=[float])  # the standard library's: no SciPy at run time


def run_onnx(session: Any, inputs: list[np.ndarray]) -> np.ndarray:
    """The graph on the inputs it kept (export drops the ones the network never reads)."""
    wanted = {i.name for i in session.get_inputs()}
    feed = {name: a for name, a in zip(INPUTS, inputs, strict=True) if name in wanted}
    return np.asarray(session.run(["prediction"], feed)[0])


def runtime_of(dataset_parameters: dict[str, Any], x_reals: list[str]) -> dict[str, Any]:
    """What building a window needs, as plain numbers: the reals in the network's order, each scaled
    feature's mean and scale (sklearn's StandardScaler inside pytorch-forecasting), the target's centring."""
    scalers = {name: [float(sc.mean_[0]), float(sc.scale_[0])] for name, sc in dataset_parameters["scalers"].items()
               if hasattr(sc, "mean_")}
    centred = bool(getattr(dataset_parameters["target_normalizer"], "center", True))
    return {"x_reals": x_reals, "scalers": scalers, "centred": centred}
