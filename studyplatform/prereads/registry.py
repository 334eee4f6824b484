"""The model registry: a model file on disk plus its spec, checked before it is recorded.

Registration loads the file in its plug-in form, runs a dummy input of the spec's shape through
it, and records the file's sha256; every later run checks the hash again (``inference``). A name
and version is registered once: registering it again with the same file and spec changes nothing,
with a different file it is refused (a changed model is a new version, so that every pre-read
names exactly the weights that produced it).

Loading a model runs code (a factory, TorchScript, a MONAI bundle's config), so the web admin
registers only what an operator has put in place (``check_web_source``): a file under
``MODELS_ROOT`` and, for the factory format, a factory in ``MODEL_FACTORIES``. Anything else is
refused before any import or file access, with one message that says nothing about the server's
files. ``manage.py register_model`` is the operator's tool and takes any path and factory. Every
registration is audited.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db import transaction

from studyplatform.audit.models import Action
from studyplatform.audit.services import record, snapshot
from studyplatform.prereads import demo_model, demo_model_ct
from studyplatform.prereads.inference import FORMATS, ModelRefusedError, load_model, model_digest
from studyplatform.prereads.intended_use import IntendedUse, set_intended_use
from studyplatform.prereads.models import AIModel
from studyplatform.prereads.spec import ModelSpec, SpecError, parse_spec

logger = logging.getLogger(__name__)


class RegistrationError(ValueError):
    """A model that cannot be registered; the message says why."""


# One message for every refused web registration: whether a path exists, what it holds and
# why an import failed stay on the server.
REFUSED_SOURCE = (
    "The web admin registers only models under the models folder (MODELS_ROOT) and, for the "
    "factory format, factories on the allow-list (MODEL_FACTORIES). Ask an operator to put the "
    "model there or to register it with manage.py register_model."
)
# A file under MODELS_ROOT that cannot be read (permissions, a vanished file).
UNREADABLE = "the model file or bundle directory cannot be read; see the server log"


def check_web_source(*, path: str | Path, fmt: str, factory: str) -> Path:
    """The resolved path of a model the web admin may load, or RegistrationError(REFUSED_SOURCE).

    Decides from the strings and the settings only: the path is resolved (symlinks and ``..``)
    but neither opened nor tested for existence, and nothing is imported.
    """
    if fmt not in FORMATS:
        raise RegistrationError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if fmt == "factory" and factory not in settings.MODEL_FACTORIES:
        raise RegistrationError(REFUSED_SOURCE)
    if fmt != "factory" and factory:
        raise RegistrationError(REFUSED_SOURCE)
    text = str(path)
    if not text.strip() or "\0" in text:
        raise RegistrationError(REFUSED_SOURCE)
    configured = Path(os.path.normpath(Path(settings.MODELS_ROOT).absolute()))
    try:
        root = configured.resolve()
    except (OSError, RuntimeError):
        raise RegistrationError(REFUSED_SOURCE) from None
    # A relative path is taken under the models folder; an absolute one must lie in it. First
    # by its spelling, so that a path elsewhere is refused without touching the file system...
    spelled = Path(os.path.normpath(configured / text))
    if not any(spelled.is_relative_to(folder) for folder in (configured, root)):
        raise RegistrationError(REFUSED_SOURCE)
    # ... then where it really leads, after symlinks.
    try:
        where = spelled.resolve()
    except (OSError, RuntimeError):  # a symlink loop
        raise RegistrationError(REFUSED_SOURCE) from None
    if where == root or not where.is_relative_to(root):
        raise RegistrationError(REFUSED_SOURCE)
    return where


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
    *,
    name: str,
    version: str,
    path: str | Path,
    fmt: str,
    spec: Any,
    factory: str = "",
    web: bool = False,
) -> tuple[Path, str, ModelSpec]:
    """Load a model and check it against its spec: (resolved path, sha256, parsed spec).

    ``web``: the request comes from the web admin. The source must pass ``check_web_source``
    first, and errors name no exception text (which can quote the file or memory addresses);
    the full error goes to the server log.
    """
    if web:
        where = check_web_source(path=path, fmt=fmt, factory=factory)
        try:
            parsed = parse_spec(spec)
        except SpecError as exc:
            raise RegistrationError(str(exc)) from exc
        if not where.exists():
            raise RegistrationError(
                f"{where}: no such model file or bundle directory in the models folder"
            )
        try:
            digest = model_digest(where)
            load_model(path=where, fmt=fmt, spec=parsed, factory=factory)
        except ModelRefusedError as exc:
            logger.warning("model %s %s refused in the admin: %s", name, version, exc)
            raise RegistrationError(f"{name} {version} refused: {exc.summary}") from None
        except Exception:  # an allow-listed factory or torch failing in any other way
            logger.exception("model %s %s failed to load in the admin", name, version)
            raise RegistrationError(f"{name} {version} refused: {UNREADABLE}") from None
        return where, digest, parsed
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
    actor: AbstractBaseUser | AnonymousUser | None = None,
    reason: str = "",
) -> tuple[AIModel, bool]:
    """Check and record a model; returns (model, created). Refuses with RegistrationError.

    Takes any path and factory: this is the operator's door (``manage.py register_model``, the
    demo). The web admin checks its sources first (``inspect_model(web=True)``).
    """
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
                moved_from = existing.path
                existing.path = str(where)
                existing.save(update_fields=["path"])
                record(
                    actor=actor,
                    action=Action.MODEL_MOVE,
                    obj=existing,
                    before={"path": moved_from},
                    after={"path": existing.path},
                    reason=reason,
                )
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
        record_registration(model=model, actor=actor, reason=reason)
    return model, True


def record_registration(
    *, model: AIModel, actor: AbstractBaseUser | AnonymousUser | None, reason: str
) -> None:
    """Audit a newly stored model (inside the transaction that stored it)."""
    record(
        actor=actor, action=Action.MODEL_REGISTER, obj=model, after=snapshot(model), reason=reason
    )


DEMO_VERSION = "1"
DEMO_INTENDED_USE = IntendedUse(
    intended_use="Flags lung nodule, pneumothorax and pleural effusion on a frontal chest "
    "radiograph, with a probability per finding and a heatmap, as a second opinion for the "
    "reading radiologist (never a stand-alone diagnosis).",
    target_population="Adults having a frontal chest radiograph (synthetic phantoms in the demo).",
    modality="CR/DX chest radiograph, frontal view",
    clinical_setting="Hospital radiology departments, routine and emergency reporting",
    intended_users="Radiologists and radiology residents",
)
DEMO_CT_INTENDED_USE = IntendedUse(
    intended_use="Flags solid lung nodules on chest CT, with a probability per case and a "
    "heatmap per slice, as a second opinion for the reading radiologist.",
    target_population="Adults having a chest CT (synthetic phantoms in the demo).",
    modality="CT chest, axial series",
    clinical_setting="Hospital radiology departments",
    intended_users="Radiologists and radiology residents",
)


def register_demo_model() -> AIModel:
    """The shipped demo CNN (weights in the package), registered once and reused."""
    model, _ = register_model(
        name=demo_model.NAME,
        version=DEMO_VERSION,
        path=demo_model.WEIGHTS,
        fmt="factory",
        spec=demo_model.spec(),
        factory=demo_model.FACTORY,
        reason="demo model",
    )
    set_intended_use(model=model, value=DEMO_INTENDED_USE, actor=None, reason="demo model")
    return model


def register_demo_ct_model() -> AIModel:
    """The shipped CT demo model (a slice-wise nodule detector), registered once and reused."""
    model, _ = register_model(
        name=demo_model_ct.NAME,
        version=DEMO_VERSION,
        path=demo_model_ct.WEIGHTS,
        fmt="factory",
        spec=demo_model_ct.spec(),
        factory=demo_model_ct.FACTORY,
        reason="CT demo model",
    )
    set_intended_use(model=model, value=DEMO_CT_INTENDED_USE, actor=None, reason="CT demo model")
    return model
