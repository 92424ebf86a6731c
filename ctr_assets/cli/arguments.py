"""What the command line accepts: ranges, names and the checks between options.

A value out of its range is a usage error (exit 2) naming the option, raised before any
command touches anything.
"""

from __future__ import annotations

import math
import socket
from datetime import UTC, datetime
from urllib.parse import urlsplit

import click

from ctr_assets.simulation.world import WorldSpec


class FiniteFloatRange(click.FloatRange):
    """A float range that also refuses NaN (it compares false with any bound) and infinity."""

    name = "number"

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


# Ranges a world can have: beyond them a run would not end, or would mean nothing.
DAYS = click.IntRange(1, 3650)
VIDEOS = click.IntRange(1, 10_000_000)
SEED = click.IntRange(0, 2**32 - 1)
DRIFT_DAY = click.IntRange(max=3649)  # negative: no drift
DRIFT_FACTOR = FiniteFloatRange(0, 10, min_open=True)  # multiplies a CTR: above 0, at most 10x


def set_by_user(name: str) -> bool:
    """Whether the user set the option (a default that does not fit is no error of theirs)."""
    source = click.get_current_context().get_parameter_source(name)
    return source is not click.core.ParameterSource.DEFAULT


def world_from_options(
    days: int, videos: int, seed: int, drift_day: int, drift_factor: float, **more
) -> WorldSpec:
    """The world the options describe; options that contradict each other are a usage error."""
    if videos < days:
        raise click.BadParameter(
            f"{videos} videos over {days} days: a world needs at least one video a day",
            param_hint="'--videos'",
        )
    if drift_day >= days and set_by_user("drift_day"):
        raise click.BadParameter(
            f"day {drift_day} is past the last day ({days - 1}) of a {days}-day world; "
            "use a negative day for no drift",
            param_hint="'--drift-day'",
        )
    end = more.get("end")
    if end is not None and (end - datetime(1970, 1, 1, tzinfo=UTC)).days < days:
        raise click.BadParameter(
            f"{days} days before {end:%Y-%m-%d} is before 1970", param_hint="'--end'"
        )
    return WorldSpec(
        seed=seed,
        days=days,
        videos=videos,
        drift_day=drift_day if 0 <= drift_day < days else None,  # the default may lie beyond
        drift_factor=drift_factor,
        **{key: value for key, value in more.items() if value is not None},
    )


def resolvable_host(ctx: click.Context, param: click.Parameter, host: str) -> str:
    """`--host`: a name or address this machine resolves (else the bind would fail later)."""
    try:
        socket.getaddrinfo(host, None)
    except (socket.gaierror, UnicodeError) as error:
        raise click.BadParameter(f"{host!r} is not an address this machine can resolve") from error
    return host


def http_url(ctx: click.Context, param: click.Parameter, url: str | None) -> str | None:
    """`--webserver`: an http(s) URL with a host (a typo must not silently run in-process)."""
    if url is None:
        return None
    try:
        parts = urlsplit(url)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        _ = parts.port  # raises on a port out of range
    except ValueError:
        valid = False
    if not valid:
        raise click.BadParameter(f"{url!r} is not an http(s) URL such as http://127.0.0.1:3000")
    return url


def words(ctx: click.Context, param: click.Parameter, text: str) -> str:
    """A reason that says something."""
    if not text.strip():
        raise click.BadParameter("say why, in words: it goes into the champion's history")
    return text


def impressions_range(
    ctx: click.Context, param: click.Parameter, text: str | None
) -> tuple[int, int] | None:
    """`--outcome-impressions LOW-HIGH`: each outcome is read after LOW to HIGH impressions."""
    if text is None:
        return None
    low, _, high = text.partition("-")
    try:
        bounds = (int(low), int(high))
    except ValueError:
        bounds = (0, -1)
    if not 1 <= bounds[0] <= bounds[1] <= 10_000_000:
        raise click.BadParameter(
            f"{text!r} is not a range of impressions such as 20-300 (1 <= LOW <= HIGH)"
        )
    return bounds


OUTCOME_IMPRESSIONS = click.option(
    "--outcome-impressions",
    default=None,
    metavar="LOW-HIGH",
    callback=impressions_range,
    help="Outcomes resolve after LOW to HIGH impressions each (e.g. 20-300: noisy labels, "
    "as for new ads judged early); default: after three days of delivery.",
)
GATE = click.option(
    "--gate",
    type=click.Choice(["noise_aware", "naive"]),
    default="noise_aware",
    show_default=True,
    help="noise_aware: retrain when the true MAE is over the threshold beyond label noise "
    "(or the CUSUM alarms); naive: when the observed MAE is.",
)
