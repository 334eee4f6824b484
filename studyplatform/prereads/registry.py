"""The model registry: a model file on disk plus its spec, checked before it is recorded.

Registration loads the file in its plug-in form, runs a dummy input of the spec's shape through
it, and records the file's sha256; every later run checks the hash again (``inference``). A name
and version is registered once: registering it again with the same file and spec changes nothing,
with a different file it is refused (a changed model is a new version, so that every pre-read
names exactly the weights that produced it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.db import transaction

from studyplatform.prereads import demo_model
from studyplatform.prereads.inference import FORMATS, ModelRefusedError, load_model, model_digest
from studyplatform.prereads.models import AIModel
from studyplatform.prereads.spec import ModelSpec, SpecError, parse_spec


class RegistrationError(ValueError):
    """A model that cannot be registered; the message says why."""


def read_spec_file(path: str | Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise RegistrationError(f"{path}: cannot read the spec ({exc.strerror})") from exc
    except json.JSONDecodeError as exc:
        raise RegistrationError(f"{path}: the spec is not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise RegistrationError(f"{path}: the spec must be a JSON object")
    return data


def model_spec(model: AIModel) -> ModelSpec:
    return parse_spec(model.spec)


def inspect_model(
    *, name: str, version: str, path: str | Path, fmt: str, spec: Any, factory: str = ""
) -> tuple[Path, str, ModelSpec]:
    """Load a model and check it against its spec: (resolved path, sha256, parsed spec)."""
    if fmt not in FORMATS:
        raise RegistrationError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if fmt == "factory" and not factory:
        raise RegistrationError("the factory format needs --factory module:function")
    if fmt != "factory" and factory:
        raise RegistrationError(f"--factory applies to the factory format only, not {fmt}")
    try:
        parsed = parse_spec(spec)
    except SpecError as exc:
        raise RegistrationError(str(exc)) from exc
    where = Path(path).resolve()
    if not where.exists():
        raise RegistrationError(f"{where}: no such model file or bundle directory")
    digest = model_digest(where)
    try:
        load_model(path=where, fmt=fmt, spec=parsed, factory=factory)
    except ModelRefusedError as exc:
        raise RegistrationError(f"{name} {version} refused: {exc}") from exc
    return where, digest, parsed


def register_model(
    *,
    name: str,
    version: str,
    path: str | Path,
    fmt: str,
    spec: dict[str, Any],
    factory: str = "",
) -> tuple[AIModel, bool]:
    """Check and record a model; returns (model, created). Refuses with RegistrationError."""
    where, digest, parsed = inspect_model(
        name=name, version=version, path=path, fmt=fmt, spec=spec, factory=factory
    )
    with transaction.atomic():
        existing = AIModel.objects.select_for_update().filter(name=name, version=version).first()
        if existing is not None:
            if existing.sha256 != digest:
                raise RegistrationError(
                    f"{name} {version} is already registered with a different file (sha256 "
                    f"{existing.sha256[:12]}..., this one {digest[:12]}...); register the new "
                    "file under a new version"
                )
            if existing.spec != parsed.as_json() or existing.format != fmt:
                raise RegistrationError(
                    f"{name} {version} is already registered with a different spec or format; "
                    "register the change under a new version"
                )
            if existing.path != str(where):
                # The same bytes moved (a checkout in another folder): follow them.
                existing.path = str(where)
                existing.save(update_fields=["path"])
            return existing, False
        model = AIModel.objects.create(
            name=name,
            version=version,
            format=fmt,
            path=str(where),
            factory=factory,
            sha256=digest,
            finding_codes=list(parsed.finding_codes),
            threshold=parsed.threshold(parsed.finding_codes[0]),
            spec=parsed.as_json(),
        )
    return model, True


DEMO_VERSION = "1"


def register_demo_model() -> AIModel:
    """The shipped demo CNN (weights in the package), registered once and reused."""
    model, _ = register_model(
        name=demo_model.NAME,
        version=DEMO_VERSION,
        path=demo_model.WEIGHTS,
        fmt="factory",
        spec=demo_model.spec(),
        factory=demo_model.FACTORY,
    )
    return model
