"""Loading registered models and running them: the torch side of the pre-read app.

A model comes in one of three plug-in forms (``ModelFormat``): a Python factory plus a state_dict,
a TorchScript file whose forward returns ``(logits, target feature map)`` (forward hooks cannot be
attached to a scripted module, so it hands Grad-CAM its map itself), or a local MONAI bundle
directory (MONAI is an optional extra: ``pip install .[monai]``). Every form is wrapped into a
``LoadedModel`` whose ``forward`` returns logits and the target feature map.

Nothing here touches the database: the registry and the services decide what to load; this
module checks the file's sha256, loads it, and refuses with a clear ``ModelRefusedError`` message a
file that does not load, does not match its spec, or changed since registration.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F  # noqa: N812 (torch's own idiom)
from torch import nn

from studyplatform.prereads.spec import HU_WINDOW, VOLUME, ModelSpec

logger = logging.getLogger(__name__)

FACTORY: Final = "factory"
TORCHSCRIPT: Final = "torchscript"
MONAI_BUNDLE: Final = "monai_bundle"
FORMATS: Final = (FACTORY, TORCHSCRIPT, MONAI_BUNDLE)
_CHUNK: Final = 1 << 20


class ModelRefusedError(Exception):
    """A model file the platform will not run; the message says which file and why.

    ``summary`` says why without the underlying exception's text, which can quote the file's
    bytes or the repr of objects in memory: it is what a web page may show.
    """

    def __init__(self, message: str, *, summary: str | None = None) -> None:
        super().__init__(message)
        self.summary = message if summary is None else summary


def model_digest(path: str | os.PathLike[str]) -> str:
    """sha256 of a model file, or of a bundle directory (every file's relative path and bytes)."""
    root = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
    for file in files:
        if root.is_dir():
            digest.update(file.relative_to(root).as_posix().encode() + b"\0")
        with file.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def pick_device() -> torch.device:
    """CUDA when a GPU is present, the CPU otherwise."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# Set in each worker's parent process before the pool forks (see tasks.py); None outside Celery.
_worker_processes: int | None = None
_threads_configured = False


def set_worker_processes(count: int) -> None:
    global _worker_processes
    _worker_processes = max(1, count)


def torch_threads_for(cores: int, processes: int) -> int:
    """Each pool process's share of the cores, less one for its decode/encode thread.

    A process runs the model in torch's threads and decodes the next chunk and encodes heatmaps
    in one helper thread (runner.py). Giving torch the whole share oversubscribes the cores: on
    two cores, two torch threads plus the helper ran a batch at 64% of a plain loop's speed, one
    torch thread at 84-94% (benchmarks/README.md).
    """
    share = max(1, cores // max(1, processes))
    return share - 1 if share >= 2 else 1


def configure_threads() -> int:
    """Set torch's threads in a worker process (see torch_threads_for), once."""
    global _threads_configured
    if _worker_processes is not None and not _threads_configured:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        torch.set_num_threads(torch_threads_for(cores or 1, _worker_processes))
        _threads_configured = True
    return torch.get_num_threads()


@dataclass
class LoadedModel:
    """A model ready to run: ``forward`` gives (logits B x K, target feature map B x C x h x w,
    or B x C x d x h x w for a volume model)."""

    module: nn.Module
    spec: ModelSpec
    device: torch.device
    returns_features: bool  # TorchScript form: the module returns the map itself
    target: nn.Module | None = None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.returns_features:
            out = self.module(x)
            if not isinstance(out, tuple | list) or len(out) != 2:
                raise ModelRefusedError(
                    "TorchScript model must return (logits, target feature map), "
                    f"not {type(out).__name__}"
                )
            return out[0], out[1]
        assert self.target is not None
        captured: list[torch.Tensor] = []

        def hook(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> torch.Tensor:
            # Keep the map and pass a copy on, so that an in-place activation after the target
            # layer cannot overwrite what Grad-CAM differentiates against.
            captured.append(output)
            return output.clone()

        handle = self.target.register_forward_hook(hook)
        try:
            logits = self.module(x)
        finally:
            handle.remove()
        if not captured:
            raise ModelRefusedError(
                f"target layer {self.spec.target_layer!r} did not run in forward"
            )
        return logits, captured[-1]


def _load_factory(path: Path, factory: str) -> nn.Module:
    if ":" not in factory:
        raise ModelRefusedError(f"factory must be 'module:function', not {factory!r}")
    module_name, _, function_name = factory.partition(":")
    try:
        build: Callable[[], nn.Module] = getattr(
            importlib.import_module(module_name), function_name
        )
    except (ImportError, AttributeError) as exc:
        raise ModelRefusedError(
            f"factory {factory!r} cannot be imported: {exc}",
            summary=f"factory {factory!r} cannot be imported",
        ) from exc
    network = build()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a file that is not a state_dict
        raise ModelRefusedError(
            f"{path}: not a loadable state_dict ({exc})", summary="not a loadable state_dict"
        ) from exc
    if not isinstance(state, dict):
        raise ModelRefusedError(f"{path}: expected a state_dict, found {type(state).__name__}")
    try:
        network.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0:3]
        raise ModelRefusedError(
            f"{path}: weights do not fit {factory}: {' '.join(first)}",
            summary=f"the weights do not fit the network {factory} builds",
        ) from exc
    return network


def _load_torchscript(path: Path) -> nn.Module:
    try:
        module: nn.Module = torch.jit.load(str(path), map_location="cpu")  # type: ignore[no-untyped-call]
    except Exception as exc:  # RuntimeError for most, but also pickle/zip errors
        raise ModelRefusedError(
            f"{path}: not a loadable TorchScript file ({exc})",
            summary="not a loadable TorchScript file",
        ) from exc
    return module


def _load_monai_bundle(path: Path) -> nn.Module:
    """A local MONAI bundle: ``configs/inference.json|yaml`` defines ``network_def``."""
    try:
        from monai.bundle import ConfigParser  # type: ignore[attr-defined, unused-ignore]
    except ImportError as exc:
        raise ModelRefusedError(
            "MONAI bundles need the optional extra: pip install 'studyplatform[monai]'"
        ) from exc
    if not path.is_dir():
        raise ModelRefusedError(f"{path}: a MONAI bundle is a directory")
    configs = [path / "configs" / f"inference.{ext}" for ext in ("json", "yaml", "yml")]
    config = next((c for c in configs if c.exists()), None)
    weights = path / "models" / "model.pt"
    if config is None or not weights.exists():
        raise ModelRefusedError(
            f"{path}: a MONAI bundle needs configs/inference.json (or .yaml) and models/model.pt"
        )
    try:
        parser = ConfigParser()
        parser.read_config(str(config))
        parser["bundle_root"] = str(path)
        network: nn.Module = parser.get_parsed_content("network_def")
        state = torch.load(weights, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
            state = state["model"]
        network.load_state_dict(state)
    except ModelRefusedError:
        raise
    except Exception as exc:  # MONAI's config machinery raises many types
        raise ModelRefusedError(
            f"{path}: MONAI bundle does not load ({exc})", summary="the MONAI bundle does not load"
        ) from exc
    return network


def load_model(
    *,
    path: str | os.PathLike[str],
    fmt: str,
    spec: ModelSpec,
    factory: str = "",
    expected_sha256: str | None = None,
    device: torch.device | None = None,
) -> LoadedModel:
    """Load and check a model: the file's hash, then a dummy forward against the spec."""
    where = Path(path)
    if not where.exists():
        raise ModelRefusedError(f"{where}: no such model file or bundle directory")
    if fmt not in FORMATS:
        raise ModelRefusedError(f"format must be one of {FORMATS}, not {fmt!r}")
    if expected_sha256 is not None:
        actual = model_digest(where)
        if actual != expected_sha256:
            raise ModelRefusedError(
                f"{where} changed since registration: sha256 {actual} is not the recorded "
                f"{expected_sha256}; register the new file as a new version"
            )
    if fmt == FACTORY:
        module = _load_factory(where, factory)
    elif fmt == TORCHSCRIPT:
        module = _load_torchscript(where)
    else:
        module = _load_monai_bundle(where)
    device = device or pick_device()
    module = module.to(device).eval()
    target = None
    if fmt != TORCHSCRIPT:
        if not spec.target_layer:
            raise ModelRefusedError("spec: target_layer is required for Grad-CAM with this format")
        try:
            target = module.get_submodule(spec.target_layer)
        except AttributeError as exc:
            raise ModelRefusedError(
                f"spec: target_layer {spec.target_layer!r} is not a layer of the model"
            ) from exc
    loaded = LoadedModel(
        module=module, spec=spec, device=device, returns_features=fmt == TORCHSCRIPT, target=target
    )
    check_against_spec(loaded)
    return loaded


def check_against_spec(loaded: LoadedModel) -> None:
    """A dummy input of the spec's shape must give one logit per finding and a map of the
    input's rank: 4-D (batch x channels x rows x columns) for images and slices, 5-D (with
    depth) for a volume."""
    spec = loaded.spec
    volume = spec.input_kind == VOLUME
    grid = spec.grid if volume else spec.input_size
    dummy = torch.zeros(2, spec.channels, *grid, device=loaded.device)
    rank = (
        "a 'volume' model takes rank 5: batch x channels x depth x rows x columns"
        if volume
        else f"an {spec.input_kind!r} model takes rank 4: batch x channels x rows x columns"
    )
    try:
        with torch.no_grad():
            logits, fmap = loaded.forward(dummy)
    except ModelRefusedError:
        raise
    except Exception as exc:  # a shape error deep inside the network, say
        shape = tuple(dummy.shape)
        raise ModelRefusedError(
            f"model fails on a dummy input of shape {shape} from the spec ({rank}): {exc}",
            summary=f"model fails on a dummy input of shape {shape} from the spec ({rank})",
        ) from exc
    expected = (2, len(spec.finding_codes))
    if tuple(logits.shape) != expected:
        raise ModelRefusedError(
            f"model outputs shape {tuple(logits.shape)} on a batch of 2, but the spec lists "
            f"{len(spec.finding_codes)} findings {list(spec.finding_codes)}: expected {expected}"
        )
    if volume and (fmap.ndim != 5 or fmap.shape[0] != 2):
        raise ModelRefusedError(
            "target feature map of a 'volume' model must be batch x channels x depth x rows x "
            f"columns (rank 5), got shape {tuple(fmap.shape)}; Grad-CAM needs a 3-D layer"
        )
    if not volume and (fmap.ndim != 4 or fmap.shape[0] != 2):
        raise ModelRefusedError(
            f"target feature map must be batch x channels x rows x columns, got {tuple(fmap.shape)}"
        )


_cache: dict[tuple[int, str], LoadedModel] = {}
_cache_lock = threading.Lock()


def cached_model(
    *, key: int, path: str, fmt: str, spec: ModelSpec, factory: str, sha256: str
) -> LoadedModel:
    """The model loaded once per worker process, keyed by model ID and hash.

    The file's hash is checked on every call (every batch), so a file replaced on disk after
    registration is refused even when an older copy sits in the cache.
    """
    actual = model_digest(path) if Path(path).exists() else None
    if actual != sha256:
        raise ModelRefusedError(
            f"{path} changed since registration (sha256 {actual or 'missing file'} is not the "
            f"recorded {sha256}); register the new file as a new version"
        )
    with _cache_lock:
        loaded = _cache.get((key, sha256))
        if loaded is None:
            configure_threads()
            loaded = load_model(path=path, fmt=fmt, spec=spec, factory=factory)
            _cache[(key, sha256)] = loaded
            logger.info(
                "loaded model %s (%s) on %s with %d torch threads",
                key,
                path,
                loaded.device,
                torch.get_num_threads(),
            )
    return loaded


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()


FloatImage = npt.NDArray[np.float32]


def preprocess(
    pixels: npt.NDArray[Any], spec: ModelSpec, *, window: tuple[float, float] | None = None
) -> FloatImage:
    """Stored gray values to the model's input (channels x rows x columns), per the spec.

    The image is resized first (area averaging when shrinking, which anti-aliases; bilinear when
    enlarging), then normalized, so percentiles are taken on the pixels the model sees.
    """
    arr = np.asarray(pixels, dtype=np.float32)
    if arr.ndim != 2:
        raise ValueError(f"expected a 2-D gray image, got shape {arr.shape}")
    tensor = resize_planes(torch.from_numpy(np.ascontiguousarray(arr))[None, None], spec.input_size)
    x = normalize(tensor[0, 0].numpy(), spec, window=window, what="image")
    out: FloatImage = np.repeat(x[None], spec.channels, axis=0).astype(np.float32, copy=False)
    return out


def resize_planes(tensor: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize N x 1 x rows x columns planes: area averaging when shrinking (which
    anti-aliases), bilinear with half-pixel centres otherwise."""
    rows, cols = size
    if (rows, cols) == tuple(tensor.shape[-2:]):
        return tensor
    shrink = rows <= tensor.shape[-2] and cols <= tensor.shape[-1]
    return F.interpolate(
        tensor,
        size=(rows, cols),
        mode="area" if shrink else "bilinear",
        **({} if shrink else {"align_corners": False}),
    )


def normalize(
    x: npt.NDArray[np.float32],
    spec: ModelSpec,
    *,
    window: tuple[float, float] | None,
    what: str,
) -> FloatImage:
    """Stored values (any shape) to the model's scale: about [0, 1] per the spec's mode, then
    ``(x - mean) / std``. ``window`` is the image's or series' own display window."""
    n = spec.normalization
    if n.mode == "percentile":
        lo, hi = (float(v) for v in np.percentile(x, [n.low, n.high]))
    elif n.mode == "minmax":
        lo, hi = float(x.min()), float(x.max())
    elif n.mode == "window":
        if window is None:
            raise ValueError(f"normalization mode 'window' needs the {what}'s display window")
        lo, hi = window[0] - window[1] / 2.0, window[0] + window[1] / 2.0
    elif n.mode == HU_WINDOW:
        lo, hi = n.bounds()
        x = np.clip(x, np.float32(lo), np.float32(hi))
    else:
        lo, hi = 0.0, n.scale
    x = (x - np.float32(lo)) / np.float32(max(hi - lo, 1e-6))
    out: FloatImage = ((x - np.float32(n.mean)) / np.float32(n.std)).astype(np.float32)
    return out


def preprocess_stack(
    stack: npt.NDArray[Any], spec: ModelSpec, *, window: tuple[float, float] | None = None
) -> FloatImage:
    """A series' slices (n x rows x columns, stored values) to n x rows' x columns' model inputs
    of one channel: each slice resized as :func:`preprocess` does, then normalized over the
    whole stack (so a slice's percentiles are the series', and neighbours stay comparable)."""
    arr = np.asarray(stack, dtype=np.float32)
    if arr.ndim != 3 or arr.shape[0] < 1:
        raise ValueError(f"expected a stack of 2-D slices, got shape {arr.shape}")
    tensor = resize_planes(torch.from_numpy(np.ascontiguousarray(arr))[:, None], spec.input_size)
    return normalize(tensor[:, 0].numpy(), spec, window=window, what="series")


def slice_inputs(
    normalized: FloatImage, indices: npt.NDArray[np.int64] | Sequence[int], neighbours: int
) -> FloatImage:
    """The 2.5-D inputs of the given slices: slice k with slices k - m .. k + m as channels
    (m = ``neighbours``), the end slices repeated past the ends of the stack."""
    index = np.asarray(indices, dtype=np.int64)[:, None] + np.arange(-neighbours, neighbours + 1)
    out: FloatImage = normalized[np.clip(index, 0, normalized.shape[0] - 1)]
    return out
