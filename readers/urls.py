from django.urls import path

from readers import views

urlpatterns = [
    path("", views.home, name="home"),
]
