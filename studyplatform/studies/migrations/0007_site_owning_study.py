"""Sites get the study whose coordinators edit them.

Existing sites keep their codes (the push API and the manifests name them) and their cases and
tokens; a site that exactly one study uses (by cases or site tokens) becomes that study's, a site
several studies share, or none uses, stays with no study (superusers edit it).
"""

import django.db.models.deletion
from django.db import migrations, models


def own_sites_used_by_one_study(apps, schema_editor):
    Site = apps.get_model("studies", "Site")
    Case = apps.get_model("studies", "Case")
    SiteToken = apps.get_model("studies", "SiteToken")
    for site in Site.objects.all():
        studies = set(Case.objects.filter(site=site).values_list("study_id", flat=True))
        studies |= set(SiteToken.objects.filter(site=site).values_list("study_id", flat=True))
        if len(studies) == 1:
            site.study_id = studies.pop()
            site.save(update_fields=["study"])


class Migration(migrations.Migration):
    dependencies = [
        ("studies", "0006_series"),
    ]

    operations = [
        migrations.AddField(
            model_name="site",
            name="study",
            field=models.ForeignKey(
                blank=True,
                help_text="The study whose coordinators edit this site (empty: superusers only).",
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="own_sites",
                to="studies.study",
            ),
        ),
        migrations.RunPython(own_sites_used_by_one_study, migrations.RunPython.noop),
    ]
