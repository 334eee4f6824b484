"""An AI model's intended use: set at registration or in the admin, frozen once a study opens.

The intended use (the clinical task, target population, modality, clinical setting and intended
users) is what the model was validated for: the submission checklist reports it as stored. A
study pins its model by name, version and sha256 when its protocol is frozen; from then on the
pinned model's intended use is part of what the study promised, so changing it is refused while
any open or locked study pins the model. A changed intended use is a new model version
(registered anew), which a study adopts only before it opens.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db import transaction

from studyplatform.audit.models import Action
from studyplatform.audit.services import record
from studyplatform.prereads.models import AIModel
from studyplatform.studies.models import Study, StudyState

__all__ = ["FIELDS", "IntendedUse", "IntendedUseFrozenError", "frozen_by", "set_intended_use"]


@dataclass(frozen=True)
class IntendedUse:
    intended_use: str = ""
    target_population: str = ""
    modality: str = ""
    clinical_setting: str = ""
    intended_users: str = ""

    @classmethod
    def of(cls, model: AIModel) -> IntendedUse:
        return cls(**{f: getattr(model, f) for f in FIELDS})

    def stripped(self) -> IntendedUse:
        return IntendedUse(**{f: v.strip() for f, v in asdict(self).items()})


FIELDS: tuple[str, ...] = tuple(IntendedUse.__dataclass_fields__)


class IntendedUseFrozenError(ValueError):
    """The model's intended use cannot change: a study that pins it has opened."""


def frozen_by(model: AIModel, *, for_update: bool = False) -> list[str]:
    """Slugs of the open or locked studies that pin ``model`` (name, version and sha256)."""
    studies = Study.objects.filter(
        ai_model_name=model.name,
        ai_model_version=model.version,
        ai_model_sha256=model.sha256,
    ).exclude(state=StudyState.DRAFT)
    if for_update:  # no study opens while the change is decided
        studies = studies.select_for_update()
    return sorted(studies.values_list("slug", flat=True))


def set_intended_use(
    *,
    model: AIModel,
    value: IntendedUse,
    actor: AbstractBaseUser | AnonymousUser | None,
    reason: str,
) -> bool:
    """Store ``value`` as the model's intended use; ``False`` when it is already that.

    Raises :class:`IntendedUseFrozenError` naming the studies when an open or locked study pins the
    model. The change is audited with the old and new values.
    """
    value = value.stripped()
    with transaction.atomic():
        stored = AIModel.objects.select_for_update().get(pk=model.pk)
        before = IntendedUse.of(stored)
        if before == value:
            return False
        frozen = frozen_by(stored, for_update=True)
        if frozen:
            raise IntendedUseFrozenError(
                f"the intended use of {stored} cannot change: it is pinned by the open or locked "
                f"study {', '.join(frozen)}, whose protocol froze it; register the new intended "
                "use with a new version of the model"
            )
        for field, text in asdict(value).items():
            setattr(stored, field, text)
        stored.save(update_fields=list(FIELDS))
        record(
            actor=actor,
            action=Action.MODEL_INTENDED_USE,
            obj=stored,
            before=asdict(before),
            after=asdict(value),
            reason=reason,
        )
    for field in FIELDS:
        setattr(model, field, getattr(stored, field))
    return True
