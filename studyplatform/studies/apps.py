from django.apps import AppConfig
from django.conf import settings


class StudiesConfig(AppConfig):
    name = "studyplatform.studies"
    label = "studies"
    verbose_name = "Studies"

    def ready(self) -> None:
        from studyplatform.studies.imaging import limit_pillow

        # Every Image.open in the process (the viewer's pixel endpoint too) refuses a bomb.
        limit_pillow(settings.IMAGE_MAX_DECODED_BYTES)
