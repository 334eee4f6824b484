from django.apps import AppConfig


class ReadingConfig(AppConfig):
    name = "studyplatform.reading"
    label = "reading"
    verbose_name = "Reading"
