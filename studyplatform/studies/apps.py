from django.apps import AppConfig


class StudiesConfig(AppConfig):
    name = "studyplatform.studies"
    label = "studies"
    verbose_name = "Studies"
