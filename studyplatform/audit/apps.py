from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "studyplatform.audit"
    label = "audit"
    verbose_name = "Audit trail"
