"""Reading-behaviour telemetry: what the reader looked at, for how long, and with what AI.

The reading page sends, with the submission (and in every draft, so a reload resumes it)::

    {"series": [{"series": 1, "slices_viewed": [1, 2, 5], "time_s": 31.2}, ...],
     "on_screen_s": 33.0,
     "ai": {"panel_shown": true, "overlay_s": 12.5, "first_view_s": 2.1}}

``series`` is the series' place in the case, ``slices_viewed`` its slice numbers shown on screen,
``time_s`` the seconds it was on screen with the tab visible, in any viewport; ``on_screen_s`` the
seconds any of the case's images was on screen (with several viewports the series' times may sum
to more; without it, from an older page that showed one series at a time, it is their sum);
``ai.overlay_s`` the seconds the heatmap overlay was drawn (once, however many viewports drew
it), ``ai.first_view_s`` the seconds from opening the case (server time) to the first sight of the
AI's output (its panel or overlay on screen).

The rule. Telemetry that cannot be true is refused with the submission, with a message naming
what is wrong (nothing is saved; the draft keeps the answers): an unknown series or slice, a
value of the wrong type, a negative or non-finite duration or one over a week, and any AI
exposure reported for an arm that shows no AI. Durations longer than the server's own time from
opening to submission (clocks and reloads make small excesses ordinary) are capped to it: each
series' time on its own (with several viewports series are on screen together, so their sum may
exceed that time), and the time on screen; the time on screen is also held between the longest
series' time and the series' sum, the overlay time to the time on screen, and each cap is written
in the record's ``notes``. A submission without telemetry (an older page, a script) stores the
read without a record.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

from studyplatform.reading.models import Read, ReadTelemetry
from studyplatform.reading.services.errors import InvalidReadError

__all__ = ["MAX_SECONDS", "SeriesTelemetry", "Telemetry", "parse_telemetry", "store_telemetry"]

MAX_SECONDS = 7 * 24 * 3600  # a duration beyond a week is not a measurement
_MAX_SERIES = 200
_KEYS = {"series", "on_screen_s", "ai", "version"}
# Each value is rounded to the millisecond on the page: the time on screen may stray from the
# series' times by that much without being worth a note.
_ROUNDING_S = 0.01
_SERIES_KEYS = {"series", "slices_viewed", "time_s"}
_AI_KEYS = {"panel_shown", "overlay_s", "first_view_s"}


@dataclass(frozen=True)
class SeriesTelemetry:
    series: int
    slices_total: int
    slices_viewed: tuple[int, ...]
    time_s: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "series": self.series,
            "slices_total": self.slices_total,
            "slices_viewed": list(self.slices_viewed),
            "time_s": round(self.time_s, 3),
        }


@dataclass(frozen=True)
class Telemetry:
    """Validated telemetry: every series of the case (unviewed ones with nothing viewed).

    ``on_screen_s`` is the seconds any of the case's images was on screen; ``None`` when the
    page did not say (it showed one series at a time: the series' sum, :attr:`time_s`).
    """

    series: tuple[SeriesTelemetry, ...]
    on_screen_s: float | None = None
    ai_panel_shown: bool = False
    ai_overlay_s: float = 0.0
    ai_first_view_s: float | None = None

    @property
    def time_s(self) -> float:
        """The seconds on screen: as reported, else the series' times summed."""
        if self.on_screen_s is not None:
            return self.on_screen_s
        return sum(s.time_s for s in self.series)


def _refuse(message: str) -> InvalidReadError:
    return InvalidReadError(f"telemetry: {message}")


def _object(raw: Any, keys: set[str], what: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise _refuse(f"{what} must be a JSON object")
    unknown = sorted(set(raw) - keys)
    if unknown:
        raise _refuse(f"{what} has unknown field(s) {', '.join(map(repr, unknown[:5]))}")
    return raw


def _seconds(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _refuse(f"{what} must be a number of seconds, got {value!r}")
    seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise _refuse(f"{what} must be a finite number of seconds, 0 or more, got {value!r}")
    if seconds > MAX_SECONDS:
        raise _refuse(f"{what} of {seconds:g} s is more than a week: not a reading time")
    return seconds


def _slices(value: Any, series: int, total: int, known: set[int]) -> tuple[int, ...]:
    if not isinstance(value, list):
        raise _refuse(f"series {series}: slices_viewed must be a list of slice numbers")
    numbers = set()
    for number in value:
        if isinstance(number, bool) or not isinstance(number, int):
            raise _refuse(f"series {series}: slice {number!r} is not a slice number")
        if number not in known:
            raise _refuse(f"series {series} has no slice {number} (it has {total})")
        numbers.add(number)
    return tuple(sorted(numbers))


def parse_telemetry(
    raw: Any, *, image_slices: dict[int, tuple[int, int]], shows_ai: bool
) -> Telemetry | None:
    """Validate the page's telemetry against the case's series and slices and the arm.

    ``image_slices`` maps each image position of the case to (series, slice number);
    ``shows_ai`` is whether the assignment's arm shows the AI. ``None`` (no telemetry) stays
    ``None``. Raises InvalidReadError naming what is wrong (module docstring).
    """
    if raw is None:
        return None
    body = _object(raw, _KEYS, "telemetry")
    slices: dict[int, set[int]] = {}
    for position, number in image_slices.values():
        slices.setdefault(position, set()).add(number)
    sizes = Counter(position for position, _ in image_slices.values())
    items = body.get("series", [])
    if not isinstance(items, list) or len(items) > _MAX_SERIES:
        raise _refuse(f"series must be a list of at most {_MAX_SERIES} objects")
    reported: dict[int, SeriesTelemetry] = {}
    for item in items:
        entry = _object(item, _SERIES_KEYS, "a series entry")
        series: Any = entry.get("series")
        if isinstance(series, bool) or not isinstance(series, int) or series not in sizes:
            known = ", ".join(map(str, sorted(sizes)))
            raise _refuse(f"the case has no series {series!r} (it has {known})")
        if series in reported:
            raise _refuse(f"series {series} is reported twice")
        reported[series] = SeriesTelemetry(
            series=series,
            slices_total=sizes[series],
            slices_viewed=_slices(
                entry.get("slices_viewed", []), series, sizes[series], slices[series]
            ),
            time_s=_seconds(entry.get("time_s", 0), f"series {series}: time_s"),
        )
    on_screen = body.get("on_screen_s")
    on_screen_s = None if on_screen is None else _seconds(on_screen, "on_screen_s")
    ai = _object(body.get("ai", {}), _AI_KEYS, "ai")
    panel = ai.get("panel_shown", False)
    if not isinstance(panel, bool):
        raise _refuse(f"ai.panel_shown must be true or false, got {panel!r}")
    overlay_s = _seconds(ai.get("overlay_s", 0), "ai.overlay_s")
    first = ai.get("first_view_s")
    first_s = None if first is None else _seconds(first, "ai.first_view_s")
    if not shows_ai and (panel or overlay_s > 0 or first_s is not None):
        raise _refuse(
            "this read's arm shows no AI output, yet AI exposure is reported "
            "(panel shown, overlay time or a first AI view)"
        )
    return Telemetry(
        series=tuple(
            reported.get(s) or SeriesTelemetry(s, sizes[s], (), 0.0) for s in sorted(sizes)
        ),
        on_screen_s=on_screen_s,
        ai_panel_shown=panel,
        ai_overlay_s=overlay_s,
        ai_first_view_s=first_s,
    )


def capped(telemetry: Telemetry, *, elapsed_s: float) -> tuple[Telemetry, list[str]]:
    """The telemetry with its durations held within the server's ``elapsed_s`` (opening to
    submission), and a note for each cap.

    Each series is capped on its own: with several viewports, series are on screen at the same
    time, so only each one's time, not their sum, is bounded by the read's span. The time on
    screen is capped to the span too, then held between the longest series' time and the
    series' sum (a note only beyond the page's millisecond rounding).
    """
    notes: list[str] = []
    elapsed_s = max(elapsed_s, 0.0)
    over = [s for s in telemetry.series if s.time_s > elapsed_s]
    notes.extend(
        f"time on series {s.series} ({s.time_s:.3f} s reported) capped to the "
        f"{elapsed_s:.3f} s from opening to submission"
        for s in over
    )
    series = [replace(s, time_s=elapsed_s) if s.time_s > elapsed_s else s for s in telemetry.series]
    longest = max((s.time_s for s in series), default=0.0)
    summed = sum(s.time_s for s in series)
    on_screen = summed if telemetry.on_screen_s is None else telemetry.on_screen_s
    if on_screen > elapsed_s:
        notes.append(
            f"time on screen ({on_screen:.3f} s) capped to the {elapsed_s:.3f} s "
            "from opening to submission"
        )
        on_screen = elapsed_s
    held = min(max(on_screen, longest), summed)
    if abs(held - on_screen) > _ROUNDING_S:
        bound = "the longest series' time" if held > on_screen else "the series' times summed"
        notes.append(f"time on screen ({on_screen:.3f} s) held to {bound} ({held:.3f} s)")
    on_screen = held
    overlay = telemetry.ai_overlay_s
    if overlay > on_screen:
        notes.append(
            f"overlay time ({overlay:.3f} s reported) capped to the time on screen "
            f"({on_screen:.3f} s)"
        )
        overlay = on_screen
    first = telemetry.ai_first_view_s
    if first is not None and first > elapsed_s:
        notes.append(
            f"first AI view ({first:.3f} s reported) capped to the {elapsed_s:.3f} s "
            "from opening to submission"
        )
        first = elapsed_s
    kept = replace(
        telemetry,
        series=tuple(series),
        on_screen_s=on_screen,
        ai_overlay_s=overlay,
        ai_first_view_s=first,
    )
    return kept, notes


def store_telemetry(*, read: Read, telemetry: Telemetry) -> ReadTelemetry:
    """Write the read's telemetry once, capped by the read's server times (in its transaction)."""
    elapsed = (read.submitted_at - read.started_at).total_seconds()
    kept, notes = capped(telemetry, elapsed_s=elapsed)
    return ReadTelemetry.objects.create(
        read=read,
        series=[s.to_dict() for s in kept.series],
        slices_viewed=sum(len(s.slices_viewed) for s in kept.series),
        slices_total=sum(s.slices_total for s in kept.series),
        series_time_s=round(kept.time_s, 3),
        ai_panel_shown=kept.ai_panel_shown,
        ai_overlay_on=kept.ai_overlay_s > 0,
        ai_overlay_s=round(kept.ai_overlay_s, 3),
        ai_first_view_s=None if kept.ai_first_view_s is None else round(kept.ai_first_view_s, 3),
        notes=notes,
    )
