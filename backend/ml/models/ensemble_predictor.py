"""The sprint plan's path of the ensemble predictor. The model layer is what engines load, so it stands
below trading, in ``backend/src/models/``; this module only hands its names on."""

from backend.src.models.ensemble_predictor import EnsembleConfig, EnsemblePredictor, ModelSpec

__all__ = ["EnsembleConfig", "EnsemblePredictor", "ModelSpec"]
