from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "studyplatform.accounts"
    label = "accounts"
    verbose_name = "Accounts and roles"

    def ready(self) -> None:
        from studyplatform.accounts import changes

        changes.connect()
