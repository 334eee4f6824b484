"""What the study admin's change form posts, for tests that submit it as a browser would."""

from __future__ import annotations

from typing import Any

from studyplatform.studies.models import Study


def study_form_fields(study: Study) -> dict[str, Any]:
    """The study's own fields as the change form holds them (inlines not included)."""
    return {
        "slug": study.slug,
        "title": study.title,
        "description": study.description,
        "design": study.design,
        "seed": study.seed,
        "washout_days": study.washout_days,
        "split_plot_groups": study.split_plot_groups,
        "readers_per_case": study.readers_per_case,
        "rating_scale": study.rating_scale,
        "contradiction_rule": study.contradiction_rule,
        "primary_endpoint": study.primary_endpoint,
        "ni_margin": "" if study.ni_margin is None else study.ni_margin,
        "froc_rule": study.froc_rule,
        "froc_distance_px": "" if study.froc_distance_px is None else study.froc_distance_px,
        **({"training_shows_ai": "on"} if study.training_shows_ai else {}),
        "ai_model_name": "",
        "ai_model_version": "",
        "ai_model_sha256": "",
    }
