"""A coordinator's use cases: reader accounts, enrolment, split-plot groups, sites, site tokens.

Each function is keyword-only, runs in one transaction, takes the study's row lock (a locked
study refuses every change, :func:`lock_study_for_write`) and appends its audit event as the
transaction's last statement. A refusal raises :class:`ManageRefusedError` with a message for
the coordinator that names the reason.
"""

from __future__ import annotations

import hashlib

from django.contrib.auth.models import Group, User
from django.contrib.auth.tokens import default_token_generator
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from studyplatform.accounts.changes import acting_as
from studyplatform.accounts.roles import READER
from studyplatform.audit.models import Action
from studyplatform.audit.services import record, snapshot
from studyplatform.dashboard.manage.selectors import study_sites
from studyplatform.reading.models import AllocationRecord, Enrolment, Read, Reader, ReadingSession
from studyplatform.studies.admin_scope import may_change_site, site_stakeholders
from studyplatform.studies.guards import lock_study_for_write
from studyplatform.studies.models import Design, Site, SiteToken, Study, StudyState
from studyplatform.studies.services.tokens import issue_site_token


class ManageRefusedError(Exception):
    """A change the study's state or data does not allow; the message says why."""


def _reader_summary(reader: Reader) -> dict[str, object]:
    return {
        "username": reader.user.get_username(),
        "code": reader.code,
        "specialty": reader.specialty,
        "years_experience": reader.years_experience,
        "role": reader.role,
    }


def create_reader(
    *,
    study: Study,
    actor: User,
    username: str,
    email: str,
    code: str,
    specialty: str = "",
    years_experience: int | None = None,
    role: str = "",
) -> Reader:
    """Create a reader's account (no usable password yet) and reader profile.

    The account gets the reader role and an unusable password: the reader chooses one through
    the one-time link of :func:`password_set_path`. Recorded in ``study``'s trail (the account's
    own events, ``user.create`` and its groups, are recorded by the account signals).
    """
    if User.objects.filter(username__iexact=username).exists():
        raise ManageRefusedError(f"the user name {username!r} is taken")
    if Reader.objects.filter(code=code).exists():
        raise ManageRefusedError(f"the reader code {code!r} is taken")
    with transaction.atomic(), acting_as(actor, reason=f"reader created for study {study.slug}"):
        lock_study_for_write(study)
        user = User(username=username, email=email)
        user.set_unusable_password()
        user.save()
        user.groups.add(Group.objects.get(name=READER))
        reader = Reader.objects.create(
            user=user,
            code=code,
            specialty=specialty,
            years_experience=years_experience,
            role=role,
        )
        record(
            actor=actor,
            action=Action.READER_CREATE,
            obj=reader,
            study=study,
            after=_reader_summary(reader),
        )
    return reader


def password_set_path(user: User) -> str:
    """The path of ``user``'s one-time password-set link (Django's password-reset token).

    The token is derived from the account's password hash and last log-in, so setting the
    password (or logging in) spends it; it also expires after ``PASSWORD_RESET_TIMEOUT``.
    """
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    return reverse("password_reset_confirm", kwargs={"uidb64": uid, "token": token})


def send_password_set_link(*, study: Study, user: User, url: str) -> None:
    """Mail ``url`` (the password-set link) to the reader, through Django's EMAIL_BACKEND."""
    if not user.email:
        return
    send_mail(
        subject=f"Your reader account for study {study.slug}",
        message=(
            f"An account was created for you to read cases of the study {study.title!r}.\n"
            f"User name: {user.get_username()}\n"
            f"Choose your password here (the link works once): {url}\n"
        ),
        from_email=None,
        recipient_list=[user.email],
    )


def invite_reader(
    *,
    study: Study,
    actor: User,
    email: str,
    code: str,
    specialty: str = "",
    years_experience: int | None = None,
    role: str = "",
    login_url: str,
) -> Enrolment:
    """Enrol the existing account with ``email`` as a reader of ``study`` and mail them.

    An account without a reader profile gets one (with ``code`` and the qualifications); an
    account that already reads keeps its profile and code. Staff accounts are refused: a study's
    coordinator or statistician must not read its cases.
    """
    users = list(User.objects.filter(email__iexact=email, is_active=True)[:2])
    if len(users) != 1:
        raise ManageRefusedError(
            f"no active account has the e-mail address {email!r}"
            if not users
            else f"several accounts have the e-mail address {email!r}: create the reader instead"
        )
    user = users[0]
    if user.is_staff or user.is_superuser or user.study_memberships.exists():
        raise ManageRefusedError(
            f"{email!r} belongs to a staff account: staff do not read the cases they manage"
        )
    with transaction.atomic(), acting_as(actor, reason=f"reader invited to study {study.slug}"):
        reader = Reader.objects.filter(user=user).first()
        if reader is None:
            if Reader.objects.filter(code=code).exists():
                raise ManageRefusedError(f"the reader code {code!r} is taken")
            reader = Reader.objects.create(
                user=user,
                code=code,
                specialty=specialty,
                years_experience=years_experience,
                role=role,
            )
            user.groups.add(Group.objects.get(name=READER))
        enrolment = enrol_reader(study=study, actor=actor, reader=reader)
        record(
            actor=actor,
            action=Action.READER_INVITE,
            obj=reader,
            study=study,
            after=_reader_summary(reader),
        )
    send_mail(
        subject=f"You are invited to read for study {study.slug}",
        message=(
            f"You were enrolled as a reader of the study {study.title!r} "
            f"(reader code {reader.code}). Log in to see your worklist: {login_url}\n"
        ),
        from_email=None,
        recipient_list=[user.email],
    )
    return enrolment


def _refuse_unless_draft(study: Study, what: str) -> None:
    if study.state != StudyState.DRAFT:
        raise ManageRefusedError(
            f"study {study.slug} is {study.state}: {what} only while it is a draft, because "
            "the allocation was frozen when it opened"
        )


def enrol_reader(*, study: Study, actor: User, reader: Reader) -> Enrolment:
    """Enrol ``reader`` in ``study`` (a draft: once open, the allocation is frozen).

    After a randomization of the draft, the coordinator randomizes again (``--replace``) so that
    the new reader gets cases; opening the study refuses a stale allocation.
    """
    with transaction.atomic():
        study = lock_study_for_write(study)
        _refuse_unless_draft(study, "readers are enrolled")
        if Enrolment.objects.filter(study=study, reader=reader).exists():
            raise ManageRefusedError(f"reader {reader.code} is already enrolled")
        if reader.user.is_staff or reader.user.study_memberships.exists():
            raise ManageRefusedError(
                f"reader {reader.code} is a staff account: staff do not read the cases they manage"
            )
        enrolment = Enrolment.objects.create(study=study, reader=reader)
        record(
            actor=actor,
            action=Action.READER_ENROL,
            obj=enrolment,
            study=study,
            after=_reader_summary(reader),
        )
    return enrolment


def unenrol_reader(*, study: Study, actor: User, enrolment: Enrolment) -> None:
    """Remove ``enrolment``: only before the reader has read anything, and only in a draft.

    Submitted reads are never deleted (they are the trial's data), and an open study's
    allocation is frozen. In a draft, the reader's sessions and assignments go with them: the
    study must be randomized again before it opens.
    """
    with transaction.atomic():
        study = lock_study_for_write(study)
        if enrolment.study_id != study.pk:
            raise ManageRefusedError("that enrolment is not in this study")
        reads = Read.objects.filter(
            assignment__session__study=study, assignment__reader_id=enrolment.reader_id
        ).count()
        if reads:
            raise ManageRefusedError(
                f"reader {enrolment.reader.code} has submitted {reads} read(s) in this study: "
                "reads are never deleted, so the reader stays enrolled"
            )
        _refuse_unless_draft(study, "readers are un-enrolled")
        before = snapshot(enrolment)
        ReadingSession.objects.filter(study=study, reader_id=enrolment.reader_id).delete()
        enrolment.delete()
        record(
            actor=actor,
            action=Action.READER_UNENROL,
            object_type="reading.enrolment",
            object_id=str(before["id"]),
            study=study,
            before=before,
        )


def set_groups(*, study: Study, actor: User, groups: dict[int, int | None]) -> list[str]:
    """Set the split-plot group of enrolments (``{enrolment id: group or None}``).

    Only before randomization: the allocation was randomized for the groups as they stood, so a
    later change would break it. Returns the reader codes whose group changed.
    """
    with transaction.atomic():
        study = lock_study_for_write(study)
        if study.design != Design.SPLIT_PLOT:
            raise ManageRefusedError(
                f"study {study.slug} is not a split-plot study: its readers form no groups"
            )
        if AllocationRecord.objects.filter(study=study).exists():
            raise ManageRefusedError(
                f"study {study.slug} is randomized: the allocation was randomized for the "
                "readers' groups as they stand, so the groups cannot change now"
            )
        enrolments = {e.pk: e for e in study.enrolments.select_related("reader")}
        changes: dict[str, dict[str, int | None]] = {}
        for pk, group in groups.items():
            enrolment = enrolments.get(pk)
            if enrolment is None:
                raise ManageRefusedError(f"enrolment {pk} is not in study {study.slug}")
            if group is not None and not 1 <= group <= study.split_plot_groups:
                raise ManageRefusedError(
                    f"group {group} of reader {enrolment.reader.code} is not between 1 and "
                    f"{study.split_plot_groups} (the study's number of groups)"
                )
            if enrolment.group != group:
                changes[enrolment.reader.code] = {"before": enrolment.group, "after": group}
                enrolment.group = group
                enrolment.save(update_fields=["group"])
        if changes:
            record(
                actor=actor,
                action=Action.READER_GROUPS,
                object_type="study.groups",
                object_id=str(study.pk),
                study=study,
                before={code: change["before"] for code, change in changes.items()},
                after={code: change["after"] for code, change in changes.items()},
            )
    return sorted(changes)


def create_site(*, study: Study, actor: User, code: str, name: str) -> Site:
    """Create a site owned by ``study`` (its coordinators edit it)."""
    with transaction.atomic():
        study = lock_study_for_write(study)
        if Site.objects.filter(code=code).exists():
            raise ManageRefusedError(
                f"the site code {code!r} is taken (site codes are platform-wide: the push API "
                "and manifests name them)"
            )
        site = Site.objects.create(code=code, name=name, study=study)
        record(actor=actor, action=Action.SITE_CREATE, obj=site, study=study, after=snapshot(site))
    return site


def rename_site(*, study: Study, actor: User, site: Site, name: str) -> Site:
    """Rename one of the study's sites; refused for a site another study uses or owns."""
    with transaction.atomic():
        study = lock_study_for_write(study)
        site = Site.objects.select_for_update().get(pk=site.pk)
        if not study_sites(study).filter(pk=site.pk).exists():
            raise ManageRefusedError(f"site {site.code} is not a site of study {study.slug}")
        if not may_change_site(actor, site):
            others = site_stakeholders(site).exclude(pk=study.pk).values_list("slug", flat=True)
            raise ManageRefusedError(
                f"site {site.code} is also used by other studies ({', '.join(others) or 'none'}) "
                "or owned by none: only a superuser renames a shared site"
            )
        before = snapshot(site)
        site.name = name
        site.save(update_fields=["name"])
        record(
            actor=actor,
            action=Action.SITE_RENAME,
            obj=site,
            study=study,
            before={"name": before["name"]},
            after={"name": name},
        )
    return site


def issue_token(*, study: Study, actor: User, site: Site, name: str) -> str:
    """Issue a site token for one of the study's sites; the token is returned only here.

    Only its SHA-256 is stored (:func:`issue_site_token`); the audit event names the token's row,
    never the token.
    """
    with transaction.atomic():
        if not study_sites(study).filter(pk=site.pk).exists():
            raise ManageRefusedError(f"site {site.code} is not a site of study {study.slug}")
        token = issue_site_token(study=study, site=site, name=name)
        issued = SiteToken.objects.get(token_sha256=hashlib.sha256(token.encode()).hexdigest())
        record(
            actor=actor,
            action=Action.SITE_TOKEN_ISSUE,
            obj=issued,
            study=study,
            after={"site": site.code, "name": name, "token_sha256": issued.token_sha256},
        )
    return token


def revoke_token(*, study: Study, actor: User, token: SiteToken) -> SiteToken:
    """Revoke one of the study's site tokens (from now on it authenticates nothing)."""
    with transaction.atomic():
        study = lock_study_for_write(study)
        token = SiteToken.objects.select_for_update().get(pk=token.pk)
        if token.study_id != study.pk:
            raise ManageRefusedError("that token is not one of this study's")
        if token.revoked_at is not None:
            raise ManageRefusedError(f"token {token.name!r} was already revoked")
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        record(
            actor=actor,
            action=Action.SITE_TOKEN_REVOKE,
            obj=token,
            study=study,
            after={"revoked_at": token.revoked_at},
        )
    return token
