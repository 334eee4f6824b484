from django.apps import AppConfig


class PrereadsConfig(AppConfig):
    name = "studyplatform.prereads"
    label = "prereads"
    verbose_name = "AI pre-reads"
