"""Issue an API token with which a site's system sends cases of a study."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from studyplatform.studies.guards import FrozenStudyError
from studyplatform.studies.models import Site, Study
from studyplatform.studies.services import issue_site_token


class Command(BaseCommand):
    help = (
        "Issue a token for SITE to send cases of STUDY to POST /api/studies/STUDY/cases/ "
        "(header 'Authorization: Bearer TOKEN'). The token is printed once and stored only as "
        "a hash; revoke it in the admin (site tokens)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("study", help="The study's slug.")
        parser.add_argument("site", help="The site's code.")
        parser.add_argument("--name", default="hospital system", help="Which system uses it.")

    def handle(self, *args: Any, **options: Any) -> None:
        study = Study.objects.filter(slug=options["study"]).first()
        if study is None:
            raise CommandError(f"no study {options['study']!r}")
        site = Site.objects.filter(code=options["site"]).first()
        if site is None:
            raise CommandError(f"no site {options['site']!r}")
        try:
            token = issue_site_token(study=study, site=site, name=options["name"])
        except FrozenStudyError as error:
            raise CommandError(f"{error}; no token was issued") from None
        self.stdout.write(token)
