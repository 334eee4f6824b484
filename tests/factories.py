"""factory_boy factories for the domain model."""

from __future__ import annotations

from datetime import timedelta

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from studyplatform.prereads.models import AIModel, PreRead
from studyplatform.reading.models import Assignment, Read, Reader, ReadFinding, ReadingSession
from studyplatform.studies.models import Arm, Case, FindingType, Site, Study, Truth


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("correct horse battery staple")


class SiteFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Site
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"site-{n}")
    name = factory.LazyAttribute(lambda o: f"Hospital {o.code}")


class StudyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Study

    slug = factory.Sequence(lambda n: f"study-{n}")
    title = "A reader study"
    seed = 12345


class ArmFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Arm

    study = factory.SubFactory(StudyFactory)
    name = "unassisted"
    label = factory.LazyAttribute(lambda o: o.name.title())
    shows_ai = factory.LazyAttribute(lambda o: o.name == "assisted")


class FindingTypeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = FindingType

    study = factory.SubFactory(StudyFactory)
    code = "nodule"
    name = "Nodule"


class CaseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Case

    study = factory.SubFactory(StudyFactory)
    case_id = factory.Sequence(lambda n: f"C{n:04d}")
    site = factory.SubFactory(SiteFactory)
    modality = "CR"


class TruthFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Truth

    case = factory.SubFactory(CaseFactory)
    finding_type = factory.SubFactory(
        FindingTypeFactory, study=factory.SelfAttribute("..case.study")
    )
    present = True
    source = "import"


class AIModelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AIModel

    name = factory.Sequence(lambda n: f"model-{n}")
    version = "1"
    format = "torchscript"
    path = "/models/model.pt"
    sha256 = "0" * 64
    finding_codes = ["nodule"]


class PreReadFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PreRead

    case = factory.SubFactory(CaseFactory)
    model = factory.SubFactory(AIModelFactory)


class ReaderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Reader

    user = factory.SubFactory(UserFactory)
    code = factory.Sequence(lambda n: f"R{n:02d}")


class ReadingSessionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ReadingSession

    study = factory.SubFactory(StudyFactory)
    reader = factory.SubFactory(ReaderFactory)
    number = 1


class AssignmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Assignment

    session = factory.SubFactory(ReadingSessionFactory)
    reader = factory.SelfAttribute("session.reader")
    case = factory.SubFactory(CaseFactory, study=factory.SelfAttribute("..session.study"))
    arm = factory.SubFactory(ArmFactory, study=factory.SelfAttribute("..session.study"))
    position = factory.Sequence(lambda n: n + 1)


class ReadFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Read

    assignment = factory.SubFactory(AssignmentFactory)
    started_at = factory.LazyFunction(lambda: timezone.now() - timedelta(seconds=40))
    submitted_at = factory.LazyFunction(timezone.now)
    idempotency_key = factory.Sequence(lambda n: f"key-{n}")
    submitted_by = factory.SelfAttribute("assignment.reader.user")


class ReadFindingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ReadFinding

    read = factory.SubFactory(ReadFactory)
    finding_type = factory.SubFactory(
        FindingTypeFactory, study=factory.SelfAttribute("..read.assignment.session.study")
    )
    present = True
    confidence = 80
