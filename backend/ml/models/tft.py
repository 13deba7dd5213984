"""Temporal Fusion Transformer (pytorch-forecasting v1 API, trained with ``lightning.pytorch``)
on price history and volatility; its quantile forecast becomes a probability of an up move.

One model across symbols: rows carry a ``symbol`` column (the group id). The target is the
per-bar log return ``ret_1``; the model forecasts its quantiles for the next ``horizon``
bars from the last ``encoder`` bars (returns and volatility are unknown in the future, so
they only feed the encoder). P(up over the horizon) = Φ(Σ medians / √Σ σ²), σ per step from
the inter-quartile range — the steps are treated as independent, an approximation.

Inference never calls ``predict()`` (it builds a Trainer each call): the network stays in
eval mode, batches come from ``dataset_parameters``, and ``model(x)`` runs under
``torch.inference_mode()``. The heavy imports happen on first use, not at module import.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import ndtr

from backend.ml.models.base import Model

log = logging.getLogger(__name__)
QUANTILES = [0.1, 0.25, 0.5, 0.75, 0.9]
DEFAULTS: dict[str, Any] = {"hidden_size": 16, "attention_head_size": 1, "dropout": 0.1, "encoder": 48,
                            "horizon": 12, "epochs": 2, "batch_size": 256, "learning_rate": 0.01,
                            "max_train_samples": 20000, "seed": 7, "center_target": False}


class TFTModel(Model):
    name = "tft"

    def __init__(self, features: list[str], **params: Any) -> None:
        super().__init__(features, **{**DEFAULTS, **params})
        self.net: Any = None
        self.dataset_parameters: dict[str, Any] | None = None

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
        torch.set_num_threads(2)
        df = self._frame(X.dropna(subset=self.features))
        ds = self._dataset(df)
        self.dataset_parameters = ds.get_parameters()
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
        trainer = pl.Trainer(max_epochs=int(p["epochs"]), accelerator="cpu", devices=1, logger=False,
                             enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                             gradient_clip_val=0.1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trainer.fit(self.net, train_dataloaders=loader)
        self.net.eval()
        self.fitted = True
        return self

    # --- inference ----------------------------------------------------------------------
    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        """P(up over the horizon) for each row, decided with data up to that row only (rows
        with fewer than ``encoder`` bars of history before them get NaN)."""
        out = np.full(len(X), np.nan)
        if self.net is None or self.dataset_parameters is None or not set(self.features) <= set(X.columns):
            return out
        df = self._frame(X)
        symbols = df["symbol"].to_numpy()
        for sym in pd.unique(symbols):
            rows = np.flatnonzero(symbols == sym)
            out[rows] = self._predict_fast(df.iloc[rows].reset_index(drop=True))
        return out

    def _quantiles_to_prob(self, q: np.ndarray) -> np.ndarray:
        med = q[:, :, 2].sum(axis=1)
        sd = np.sqrt((((q[:, :, 3] - q[:, :, 1]) / 1.349) ** 2).sum(axis=1)) + 1e-12
        return np.asarray(ndtr(med / sd), dtype=float)

    def _predict_fast(self, df: pd.DataFrame, chunk: int = 2048) -> np.ndarray:
        """Every full-encoder window at once, built directly as the dataset would build it
        (same scalers, same per-window target normalisation): no TimeSeriesDataSet per call."""
        import torch  # noqa: PLC0415

        enc, hor = int(self.params["encoder"]), int(self.params["horizon"])
        res = np.full(len(df), np.nan)
        if len(df) < enc:
            return res
        assert self.dataset_parameters is not None  # noqa: S101 - checked by the caller
        vals = df[self.features].to_numpy(dtype=np.float32)
        ends = np.arange(enc - 1, len(df))
        reals = list(self.net.hparams["x_reals"])
        scalers = self.dataset_parameters["scalers"]
        ti = self.features.index("ret_1")
        centred = bool(getattr(self.dataset_parameters["target_normalizer"], "center", True))
        rel = (np.arange(-enc, hor, dtype=np.float32) / enc)[None, :]
        eps = torch.finfo(torch.float32).eps
        for start in range(0, len(ends), chunk):
            e = ends[start:start + chunk]
            win = vals[(e - enc + 1)[:, None] + np.arange(enc)[None, :]]  # (K, enc, F)
            k = len(e)
            target = torch.from_numpy(np.ascontiguousarray(win[:, :, ti]))
            center = target.mean(-1) if centred else torch.zeros(k)
            scale = target.std(-1) + eps
            cont = np.zeros((k, enc + hor, len(reals)), dtype=np.float32)
            for j, name in enumerate(reals):
                if name == "relative_time_idx":
                    cont[:, :, j] = rel
                    continue
                raw = np.concatenate([win[:, :, self.features.index(name)], np.zeros((k, hor), np.float32)], axis=1)
                if name == "ret_1":
                    cont[:, :, j] = (raw - center.numpy()[:, None]) / scale.numpy()[:, None]
                else:
                    sc = scalers[name]
                    cont[:, :, j] = (raw - sc.mean_[0]) / sc.scale_[0]
            c = torch.from_numpy(cont)
            x = {"encoder_cat": torch.zeros((k, enc, 0), dtype=torch.long), "encoder_cont": c[:, :enc],
                 "encoder_target": target, "encoder_lengths": torch.full((k,), enc, dtype=torch.long),
                 "decoder_cat": torch.zeros((k, hor, 0), dtype=torch.long), "decoder_cont": c[:, enc:],
                 "decoder_target": torch.zeros((k, hor)), "decoder_lengths": torch.full((k,), hor, dtype=torch.long),
                 "decoder_time_idx": torch.from_numpy(e[:, None] + 1 + np.arange(hor)[None, :]),
                 "groups": torch.zeros((k, 1), dtype=torch.long), "target_scale": torch.stack([center, scale], -1)}
            with torch.inference_mode():
                q = self.net(x)["prediction"].numpy()
            res[e] = self._quantiles_to_prob(q)
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

    # --- artifacts (state dict + dataset parameters; no pickle of code objects) --------------
    def _save_state(self, directory: Path) -> list[Path]:
        if self.net is None or self.dataset_parameters is None:
            return []
        import torch  # noqa: PLC0415

        path = directory / "tft.pt"
        torch.save({"state_dict": self.net.state_dict(), "dataset_parameters": self.dataset_parameters,
                    "hparams": dict(self.net.hparams)}, path)
        return [path]

    def _load_state(self, directory: Path, meta: dict[str, Any]) -> None:
        path = directory / "tft.pt"
        if not path.exists():
            return
        import torch  # noqa: PLC0415
        from pytorch_forecasting import TemporalFusionTransformer  # noqa: PLC0415

        blob = torch.load(path, weights_only=False)  # sha256-verified by the registry before this runs
        self.dataset_parameters = blob["dataset_parameters"]
        hparams = dict(blob["hparams"])
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*is an instance of `nn.Module`.*")
            self.net = TemporalFusionTransformer(**hparams)
        self.net.load_state_dict(blob["state_dict"])
        self.net.eval()
