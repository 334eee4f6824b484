from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "studyplatform.dashboard"
    label = "dashboard"
    verbose_name = "Dashboard"
