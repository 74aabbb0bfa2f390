"""``mongoengine-activity demo``: a small shop, tracked."""

from __future__ import annotations

import click

from ._common import connect, connect_option, main


@main.command()
@connect_option
@click.option("--orders", default=60, show_default=True, help="Orders to simulate.")
@click.option("--seed", default=7, show_default=True, help="Random seed.")
def demo(uri: str | None, db: str, orders: int, seed: int) -> None:
    """Run a simulated shop and print its activity feed and one order's history."""
    from ..demo import run

    connect(uri, db)
    run(orders=orders, seed=seed, echo=click.echo)
