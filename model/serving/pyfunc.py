"""Sprout's classifier as an MLflow pyfunc: encoded image bytes in, label and probabilities out.

Every registered version is logged this way (``RunLog.log_onnx``): the fused ONNX graph is the model's one
artifact (``artifacts/model.onnx``, byte for byte the file whose sha256 training records) and ``SproutPyfunc``
runs it with the API's ``Predictor``, so ``mlflow.pyfunc.load_model("models:/sprout-classifier@champion")`` and
``mlflow models serve`` answer what ``POST /predict`` answers.

The model is logged as code, not pickled: its ``sprout_pyfunc.py`` only imports this module, so whatever loads
it needs the ``sprout`` package installed. ONNX Runtime only: no torch, no onnx.

Input: a DataFrame with a binary column ``image`` (in ``/invocations`` JSON, base64 strings). Output: a DataFrame
with ``label``, ``confidence``, ``probabilities`` (label → probability), ``abstained`` and ``unfamiliar``, as
``/predict`` answers.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from mlflow.pyfunc import PythonModel, PythonModelContext

from model.core.errors import SproutError
from model.serving.predictor import Predictor

if TYPE_CHECKING:
    from mlflow.models import ModelSignature

IMAGE_COLUMN = "image"
OUTPUT_COLUMNS = ("label", "confidence", "probabilities", "abstained", "unfamiliar")
ONNX_ARTIFACT = "onnx"  # the key of the graph in the model's artifacts
ONNX_FILE = "model.onnx"
LOADER_FILE = "sprout_pyfunc.py"
LOADER_CODE = '''"""Sprout's MLflow pyfunc, logged as code: the class comes from the installed sprout package."""
from mlflow.models import set_model

from model.serving.pyfunc import SproutPyfunc

set_model(SproutPyfunc())
'''
# What the model needs besides the sprout package itself (not on PyPI: serve with `--env-manager local`).
REQUIREMENTS = ("mlflow", "onnxruntime", "numpy", "pillow", "pandas")


def pip_requirements() -> list[str]:
    """The requirements, pinned to the versions installed here."""
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in REQUIREMENTS]


def signature() -> ModelSignature:
    """``image`` (binary) in; ``label``, ``confidence``, ``probabilities`` (label → probability), ``abstained``
    and ``unfamiliar`` out."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, DataType, Map, Schema

    return ModelSignature(
        inputs=Schema([ColSpec(DataType.binary, IMAGE_COLUMN)]),
        outputs=Schema([ColSpec(DataType.string, "label"), ColSpec(DataType.double, "confidence"),
                        ColSpec(Map(DataType.double), "probabilities"), ColSpec(DataType.boolean, "abstained"),
                        ColSpec(DataType.boolean, "unfamiliar")]),
    )


def input_example() -> pd.DataFrame:
    """One small PNG: the model's ``serving_input_example.json`` (an ``/invocations`` body to copy), which
    MLflow also predicts once when logging."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (96, 160, 64)).save(buffer, format="PNG")
    return pd.DataFrame({IMAGE_COLUMN: [buffer.getvalue()]})


class SproutPyfunc(PythonModel):
    """The fused ONNX graph behind MLflow's pyfunc interface."""

    predictor: Predictor

    def load_context(self, context: PythonModelContext) -> None:
        self.predictor = Predictor.load(Path(context.artifacts[ONNX_ARTIFACT]))

    def predict(self, context: PythonModelContext | None, model_input: pd.DataFrame,
                params: dict[str, Any] | None = None) -> pd.DataFrame:
        """One row per image of the ``image`` column (encoded bytes: JPEG, PNG, WebP, ...).

        An image Sprout cannot read fails the whole call with INVALID_PARAMETER_VALUE (HTTP 400 when served).
        """
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

        if IMAGE_COLUMN not in model_input.columns:
            raise MlflowException(f"expected a column {IMAGE_COLUMN!r} of encoded images",
                                  error_code=INVALID_PARAMETER_VALUE)
        try:
            results = self.predictor.predict_many([bytes(data) for data in model_input[IMAGE_COLUMN]])
        except SproutError as exc:
            raise MlflowException(str(exc), error_code=INVALID_PARAMETER_VALUE) from exc
        return pd.DataFrame({"label": [r.label for r in results],
                             "confidence": [r.confidence for r in results],
                             "probabilities": [r.probabilities for r in results],
                             "abstained": [r.abstained for r in results],
                             "unfamiliar": [r.unfamiliar for r in results]}, columns=list(OUTPUT_COLUMNS))


@contextlib.contextmanager
def without_module_scan() -> Iterator[None]:
    """MLflow's check of a model's requirements against this environment, without its module-to-distribution scan.

    Logging (and the input example's trial load) warns when a requirement does not match what is installed. To
    do so MLflow first maps every module of every installed distribution to its distribution
    (``importlib_metadata.packages_distributions()``, reading the RECORD of each one without ``top_level.txt``:
    about 1.5 s of a 10 s retrain here; torch's alone lists 14,701 files). That map serves requirement
    *inference*, which Sprout never asks for, and a fallback from a distribution's name to a module's
    ``__version__``; Sprout's requirements are distributions pinned from this very environment, so with an empty
    map the check still reads each one's installed version, from its own metadata. The map is restored after.
    """
    from mlflow.utils import requirements_utils as reqs

    if getattr(reqs, "_MODULES_TO_PACKAGES", ()) is not None:  # built already, or MLflow changed: leave it
        yield
        return
    reqs._MODULES_TO_PACKAGES = {}  # type: ignore[assignment]  # MLflow annotates the unbuilt map as None
    try:
        yield
    finally:
        reqs._MODULES_TO_PACKAGES, reqs._PACKAGES_TO_MODULES = None, None


def log_pyfunc(onnx_bytes: bytes, *, name: str, metadata: dict[str, str]) -> str:
    """Log the serialized graph as Sprout's pyfunc in the active MLflow run; returns its model URI."""
    import mlflow.pyfunc

    with tempfile.TemporaryDirectory() as tmp, without_module_scan():
        graph, loader = Path(tmp) / ONNX_FILE, Path(tmp) / LOADER_FILE
        graph.write_bytes(onnx_bytes)
        loader.write_text(LOADER_CODE)
        info = mlflow.pyfunc.log_model(name=name, python_model=str(loader), artifacts={ONNX_ARTIFACT: str(graph)},
                                       signature=signature(), input_example=input_example(),
                                       pip_requirements=pip_requirements(), metadata=metadata)
    return str(info.model_uri)
