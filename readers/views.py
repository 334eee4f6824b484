"""The readers' pages. Views parse the request, call one selector, render."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from studyplatform.reading import selectors


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Where every account lands after login: a reader's worklist, or links for staff."""
    assert request.user.is_authenticated  # narrowed by login_required
    context = {"home": selectors.home_for(user=request.user)}
    return render(request, "readers/home.html", context)
