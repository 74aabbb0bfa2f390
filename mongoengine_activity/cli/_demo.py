"""``mongoengine-activity demo``: a small shop, tracked."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ._common import connect, connect_option, main

if TYPE_CHECKING:
    from ..demo import DemoReport


@main.command()
@connect_option
@click.option(
    "--steps",
    default=300,
    show_default=True,
    type=click.IntRange(min=0),
    help="Random operations after the set-up.",
)
@click.option("--seed", default=7, show_default=True, help="Random seed.")
@click.option(
    "--feed",
    "feed_limit",
    default=40,
    show_default=True,
    type=click.IntRange(min=0),
    help="Newest activities to print.",
)
def demo(
    uri: str | None, db: str, steps: int, seed: int, feed_limit: int
) -> DemoReport:
    """Run a simulated shop and print its feed, one order's history and counts.

    Customers, products, orders, payments and comments are created, edited and
    deleted by a seeded scenario. Everything lives in the demo_* collections
    of the database, which the demo empties first.
    """
    from ..demo import run

    connect(uri, db)
    return run(steps=steps, seed=seed, feed=feed_limit, echo=click.echo)
