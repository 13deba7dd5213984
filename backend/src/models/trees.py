"""LightGBM boosters at run time: trained natively, run through ONNX Runtime.

Training (the trainer install: ``lightgbm``, ``onnx``) saves each booster twice: LightGBM's text model
and an ONNX graph, checked against the booster on up to ``CHECK_ROWS`` of the training rows (refused
when an output differs by more than ``TOLERANCE``). Engines load the ONNX graph, so the runtime install
carries neither LightGBM nor SciPy (which LightGBM imports); ``LEVIBOT_GBDT_BACKEND=native`` runs the
text model instead.

The graph is written here from LightGBM's own model dump, not by onnxmltools: onnxmltools stores split
thresholds as float32, and on our features (prices near 6e4, where float32 steps by 0.004) that flips
splits — P(up) differed from LightGBM by 1.9e-2 on the auto-tuner's test data. ONNX-ML's
``TreeEnsembleRegressor`` (opset 3) takes double thresholds (``nodes_values_as_tensor``) and a double
input; it sums leaves in float32 (~1e-8 here), then the logistic runs in double.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    import onnx

log = logging.getLogger(__name__)

TOLERANCE = 1e-4  # max |difference| of an output (P(up), or a quartile of the log return)
CHECK_ROWS = 4096


class Trees(Protocol):
    def predict(self, x: np.ndarray, /) -> Any: ...


class OnnxTrees:
    """An exported booster: ``predict`` gives what ``lightgbm.Booster.predict`` gives (P(class 1) for a
    binary classifier, the value for a regressor)."""

    def __init__(self, path: Path) -> None:
        import onnxruntime as ort  # noqa: PLC0415

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # one engine, one core's share: engines run side by side
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def predict(self, x: np.ndarray) -> np.ndarray:
        out = self.session.run(["output"], {"input": np.ascontiguousarray(x, dtype=np.float64)})
        return np.asarray(out[0], dtype=float)


def export(booster: Any, path: Path, check: np.ndarray) -> Path:
    """``booster`` as ONNX at ``path``, checked on the rows ``check``; ValueError when it differs."""
    path.write_bytes(graph(booster.dump_model()).SerializeToString())
    rows = check[:CHECK_ROWS]
    diff = float(np.max(np.abs(OnnxTrees(path).predict(rows) - booster.predict(rows)))) if len(rows) else 0.0
    if not diff <= TOLERANCE:
        path.unlink(missing_ok=True)
        raise ValueError(f"{path.stem}: the ONNX export differs from LightGBM by {diff:.2e}")
    log.debug("%s exported to ONNX: max |difference| %.1e on %d rows", path.stem, diff, len(rows))
    return path


def graph(dump: dict[str, Any]) -> onnx.ModelProto:
    """LightGBM's ``dump_model()`` (numerical splits) as one ``TreeEnsembleRegressor`` summing raw scores,
    then the objective's link: the logistic for ``binary``, none for regressions."""
    from onnx import TensorProto, checker, helper, numpy_helper  # noqa: PLC0415 - the trainer install

    nodes: dict[str, Any] = {k: [] for k in ("nodeids", "featureids", "modes", "treeids", "truenodeids",
                                                   "falsenodeids", "missing_value_tracks_true", "values")}
    leaves: dict[str, list[Any]] = {"treeids": [], "nodeids": [], "weights": []}
    for tree in dump["tree_info"]:
        tid, stack, next_id = tree["tree_index"], [(tree["tree_structure"], 0)], 1
        while stack:
            node, nid = stack.pop()
            for key, value in (("nodeids", nid), ("treeids", tid)):
                nodes[key].append(value)
            if "split_index" not in node:  # a leaf (a single-leaf tree is one too)
                for key, value in (("featureids", 0), ("modes", "LEAF"), ("truenodeids", 0), ("falsenodeids", 0),
                                   ("missing_value_tracks_true", 0), ("values", 0.0)):
                    nodes[key].append(value)
                for key, value in (("treeids", tid), ("nodeids", nid), ("weights", node["leaf_value"])):
                    leaves[key].append(value)
                continue
            if node["decision_type"] != "<=" or node.get("missing_type") == "Zero":
                raise ValueError(f"tree {tid}: a {node['decision_type']} split ({node.get('missing_type')} as "
                                 "missing) has no ONNX form here")
            left, right, next_id = next_id, next_id + 1, next_id + 2
            for key, value in (("featureids", node["split_feature"]), ("modes", "BRANCH_LEQ"),
                               ("truenodeids", left), ("falsenodeids", right),
                               ("missing_value_tracks_true", int(bool(node["default_left"]))),
                               ("values", float(node["threshold"]))):
                nodes[key].append(value)
            stack += [(node["right_child"], right), (node["left_child"], left)]
    f64 = np.float64
    ops = [helper.make_node(
        "TreeEnsembleRegressor", ["input"], ["raw32"], domain="ai.onnx.ml", n_targets=1, aggregate_function="SUM",
        post_transform="NONE", **{f"nodes_{k}": v for k, v in nodes.items() if k != "values"},
        nodes_values_as_tensor=numpy_helper.from_array(np.array(nodes["values"], dtype=f64), "thresholds"),
        target_ids=[0] * len(leaves["nodeids"]), target_nodeids=leaves["nodeids"], target_treeids=leaves["treeids"],
        target_weights_as_tensor=numpy_helper.from_array(np.array(leaves["weights"], dtype=f64), "leaves")),
        helper.make_node("Cast", ["raw32"], ["raw"], to=TensorProto.DOUBLE),
        helper.make_node("Constant", [], ["rows"], value=numpy_helper.from_array(np.array([-1], dtype=np.int64)))]
    objective = str(dump.get("objective", ""))
    if objective.startswith("binary"):
        scale = float(objective.split("sigmoid:")[1].split()[0]) if "sigmoid:" in objective else 1.0
        ops += [helper.make_node("Constant", [], ["scale"], value=numpy_helper.from_array(np.array(scale, dtype=f64))),
                helper.make_node("Mul", ["raw", "scale"], ["z"]), helper.make_node("Sigmoid", ["z"], ["link"])]
    elif objective.split()[0] in ("quantile", "regression", "regression_l1", "huber"):
        ops.append(helper.make_node("Identity", ["raw"], ["link"]))
    else:
        raise ValueError(f"objective {objective!r} has no ONNX form here")
    ops.append(helper.make_node("Reshape", ["link", "rows"], ["output"]))
    n = int(dump["max_feature_idx"]) + 1
    model = helper.make_model(
        helper.make_graph(ops, "lightgbm", [helper.make_tensor_value_info("input", TensorProto.DOUBLE, ["rows", n])],
                          [helper.make_tensor_value_info("output", TensorProto.DOUBLE, ["rows"])]),
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)])
    checker.check_model(model)
    return model


def load(text_model: Path, *, native: bool = False) -> Trees | None:
    """The booster saved as ``text_model`` (``<name>.txt``, with ``<name>.onnx`` beside it), or None;
    through ONNX Runtime unless ``native`` (LightGBM itself) is asked for."""
    onnx = text_model.with_suffix(".onnx")
    if onnx.exists() and not native:
        return OnnxTrees(onnx)
    if not text_model.exists():
        return None
    import lightgbm as lgb  # noqa: PLC0415 - the trainer install; the runtime has only the ONNX graph

    return lgb.Booster(model_file=str(text_model))  # type: ignore[no-any-return]
