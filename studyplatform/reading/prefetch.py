"""Who may load a case's pixels, and the next case's images, fetched before the reader opens it.

The viewer loads pixels by case and image (``cases/<case>/images/<position>/pixels/``), not by
assignment: one URL for an image whichever arm or session shows it, so the browser's cache
serves a case's images to every page that shows them. While a reader reads a case, the page
names the images of the case that comes next in the session, and the browser fetches them into
its cache. Concealment holds because nothing of the next assignment reaches the page: not its
ID, not its arm, no AI output (a case's images are the same in every arm, and heatmaps are only
ever served by the assignment's own gated URLs); and fetching pixels opens nothing: the case is
opened (start time stamped, arm revealed) only when the reader opens its page.
"""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import OuterRef, Subquery

from studyplatform.reading.models import Assignment
from studyplatform.studies.models import Image


def _following(assignment: Assignment) -> Assignment | None:
    """The next unread assignment of the session after the reader's open, unread one."""
    return (
        Assignment.objects.filter(session_id=assignment.session_id, reads__isnull=True)
        .exclude(pk=assignment.pk)
        .order_by("position", "step")
        .only("case_id")
        .first()
    )


def prefetch_images(assignment: Assignment) -> list[tuple[int, int]]:
    """(case, image position) of the next case's images, for an open, unsubmitted assignment:
    the first image of each series first (what the viewer shows first), then the rest in
    series and slice order; empty when nothing follows in the session."""
    if assignment.opened_at is None or getattr(assignment, "submitted", True):
        return []
    following = _following(assignment)
    if following is None:
        return []
    images = list(
        Image.objects.filter(case_id=following.case_id)
        .order_by("series__position", "slice_number", "position")
        .values_list("series__position", "position")
    )
    firsts: dict[int, int] = {}
    for series, position in images:
        firsts.setdefault(series, position)
    first = set(firsts.values())
    ordered = list(firsts.values()) + [p for _, p in images if p not in first]
    return [(following.case_id, position) for position in ordered]


def may_load_pixels(*, user: User | AnonymousUser, case_id: int) -> bool:
    """Whether ``user`` may load the case's images: a case of one of their assignments that is
    opened, or the case that comes next after the one they have open (prefetched)."""
    if user.pk is None:
        return False
    mine = Assignment.objects.filter(reader__user_id=user.pk)
    if mine.filter(case_id=case_id, opened_at__isnull=False).exists():
        return True
    # In one query (this runs on every pixel request of a prefetch): the case that follows each
    # of the reader's open, unread assignments in its session, as :func:`_following` finds it.
    following = Subquery(
        Assignment.objects.filter(session_id=OuterRef("session_id"), reads__isnull=True)
        .exclude(pk=OuterRef("pk"))
        .order_by("position", "step")
        .values("case_id")[:1]
    )
    return (
        mine.filter(opened_at__isnull=False, reads__isnull=True)
        .annotate(following_case=following)
        .filter(following_case=case_id)
        .exists()
    )
