"""The coordinator's forms: a new or invited reader, an enrolment, groups, a site, a site token."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.validators import MaxValueValidator

from studyplatform.reading.models import Reader, ReaderRole
from studyplatform.studies.models import Site, Study


class _Qualifications(forms.Form):
    code = forms.SlugField(
        max_length=20, label="Reader code", help_text="The pseudonym used in exports."
    )
    specialty = forms.CharField(max_length=100, required=False)
    years_experience = forms.IntegerField(
        min_value=0,
        required=False,
        validators=[MaxValueValidator(80)],
        label="Years of experience",
    )
    role = forms.ChoiceField(choices=[("", "---"), *ReaderRole.choices], required=False)


class ReaderCreateForm(_Qualifications):
    """A new reader account: user name, e-mail (for the password-set link), qualifications."""

    username = forms.CharField(max_length=150, validators=[UnicodeUsernameValidator()])
    email = forms.EmailField(max_length=254)

    field_order = ["username", "email", "code", "specialty", "years_experience", "role"]


class ReaderInviteForm(_Qualifications):
    """An existing account, named by its e-mail, enrolled as a reader (the code is used only for
    an account that has no reader profile yet)."""

    email = forms.EmailField(max_length=254)

    field_order = ["email", "code", "specialty", "years_experience", "role"]


class EnrolForm(forms.Form):
    """An existing reader, named by reader code."""

    code = forms.SlugField(max_length=20, label="Reader code")

    def clean_code(self) -> Reader:
        code: str = self.cleaned_data["code"]
        reader = Reader.objects.select_related("user").filter(code=code).first()
        if reader is None:
            raise forms.ValidationError(f"no reader has the code {code!r}")
        return reader


def parse_groups(data: Any, study: Study) -> dict[int, int | None]:
    """``group-<enrolment id>`` fields of a POST as ``{enrolment id: group or None}``.

    Raises ValueError naming the field whose value is not a whole number.
    """
    groups: dict[int, int | None] = {}
    known = set(study.enrolments.values_list("pk", flat=True))
    for pk in known:
        raw = str(data.get(f"group-{pk}", "")).strip()
        if not raw:
            groups[pk] = None
            continue
        if not raw.isdigit():
            raise ValueError(f"group-{pk}: {raw!r} is not a whole number")
        groups[pk] = int(raw)
    return groups


class SiteCreateForm(forms.Form):
    code = forms.SlugField(max_length=40, help_text="Platform-wide: the push API names it.")
    name = forms.CharField(max_length=200)


class SiteRenameForm(forms.Form):
    name = forms.CharField(max_length=200)


class TokenIssueForm(forms.Form):
    """One of the study's sites and the name of the system that will use the token."""

    site = forms.ModelChoiceField(queryset=Site.objects.none())
    name = forms.CharField(max_length=100, help_text="Which system uses it, e.g. 'PACS router'.")

    def __init__(self, *args: Any, sites: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ModelChoiceField[Site], self.fields["site"]).queryset = sites
