"""What runs a loaded model: ONNX Runtime (the default: what engines run, without torch or LightGBM) or
the training stack. Read from the typed settings (``LEVIBOT_TFT_BACKEND``, ``LEVIBOT_GBDT_BACKEND``)
at the entry point and passed down to every load; a module without heavy imports, so engines may
name it at start."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from backend.src.core.settings import Settings


@dataclass(frozen=True)
class Backends:
    tft: Literal["onnx", "torch"] = "onnx"
    gbdt: Literal["onnx", "native"] = "onnx"

    @staticmethod
    def of(settings: Settings) -> Backends:
        return Backends(settings.tft_backend, settings.gbdt_backend)

    def preload(self) -> list[str]:
        """The training stack a forkserver imports once when models run in it (never per engine)."""
        return [*(["torch", "pytorch_forecasting"] if self.tft == "torch" else []),
                *(["lightgbm"] if self.gbdt == "native" else [])]


ONNX = Backends()  # what engines run
