"""A live activity dashboard: the demo shop's activities as they happen.

Run it (on mongomock, with a simulated shop writing an order every 2 seconds)::

    pip install -e '.[realtime]' uvicorn
    python examples/dashboard/app.py            # then open http://127.0.0.1:8000

``--uri mongodb://...`` uses a real server, ``--every 0`` stops the simulation
(then write to the tracked models from anywhere in this process).

The page lists the newest activities, rendered on the server, and then opens
an ``EventSource`` with ``last_event_id`` set to the newest one shown, so
nothing logged between the page and the stream is missed; after a network
blip the browser reconnects with ``Last-Event-ID`` and gets what it missed.
"""

from __future__ import annotations

import argparse
import contextlib
import decimal
import html
import random
import threading
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from mongoengine_activity import Activity, activity_context, log_activity
from mongoengine_activity.demo import DemoCustomer, DemoLineItem, DemoOrder
from mongoengine_activity.realtime import describe_activity
from mongoengine_activity.realtime.starlette import activity_routes

STREAM_PATH = "/activities/stream"

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Live activity</title>
<style>
  body {{ font: 15px/1.4 system-ui, sans-serif; margin: 2rem; color: #222; }}
  h1 {{ font-size: 1.3rem; }}
  #status {{ font-size: .85rem; padding: .1rem .5rem; border-radius: .6rem;
             background: #eee; }}
  #status.live {{ background: #c8f7c5; }}
  ul {{ list-style: none; padding: 0; max-width: 60rem; }}
  li {{ padding: .35rem .5rem; border-bottom: 1px solid #eee; }}
  li time {{ color: #888; font-variant-numeric: tabular-nums; margin-right: .6rem; }}
  li.new {{ animation: flash 1.5s; }}
  @keyframes flash {{ from {{ background: #fff6bf; }} to {{ background: none; }} }}
</style>
</head>
<body>
<h1>Live activity <span id="status">connecting</span></h1>
<ul id="feed">{items}</ul>
<script>
const feed = document.getElementById("feed");
const status = document.getElementById("status");
const source = new EventSource({stream_url});
function show(state) {{ status.textContent = state; status.className = state; }}
source.onopen = () => show("live");
source.onerror = () => show("reconnecting");
source.addEventListener("activity", (message) => {{
  const activity = JSON.parse(message.data);
  const item = document.createElement("li");
  item.className = "new";
  item.dataset.id = activity.id;
  const time = document.createElement("time");
  time.textContent = activity.createdAt.$date.slice(11, 19);  // UTC, as above
  item.append(time, document.createTextNode(" " + activity.message));
  feed.prepend(item);
  while (feed.children.length > {keep}) feed.lastElementChild.remove();
}});
</script>
</body>
</html>
"""


def _item(activity: Activity) -> str:
    when = activity.created_at.strftime("%H:%M:%S")  # UTC
    return (
        f'<li data-id="{activity.id}"><time>{when}</time>'
        f" {html.escape(describe_activity(activity))}</li>"
    )


def page(request: Request) -> HTMLResponse:
    """The newest activities, then the stream from just after them."""
    keep = 50
    newest = list(Activity.objects.order_by("-created_at", "-id").limit(keep))
    url = STREAM_PATH + (f"?last_event_id={newest[0].id}" if newest else "")
    return HTMLResponse(
        PAGE.format(
            items="".join(_item(activity) for activity in newest),
            stream_url=repr(url),
            keep=keep,
        )
    )


class ShopSimulation:
    """Writes the demo shop's orders, payments and shipments, one step a tick."""

    def __init__(self, *, seed: int = 7) -> None:
        self._rng = random.Random(seed)
        self._customers: list[DemoCustomer] = []
        self._open: list[DemoOrder] = []
        self._orders = 0

    def step(self) -> None:
        rng = self._rng
        if not self._customers:
            self._customers = [
                DemoCustomer(name=name).save() for name in ("Ada", "Grace", "Linus")
            ]
        with activity_context(user_id=f"user-{rng.randrange(3)}"):
            if self._open and rng.random() < 0.6:
                order = self._open.pop(0)
                if order.status == "new":
                    order.status = "paid"
                    order.items[0].qty += 1
                    order.save()
                    self._open.append(order)
                else:
                    log_activity("order_shipped", entity=order, data={"carrier": "UPS"})
            else:
                self._orders += 1
                order = DemoOrder(
                    number=f"A-{self._orders:04d}",
                    customer=rng.choice(self._customers),
                    items=[DemoLineItem(sku=f"SKU-{rng.randint(1, 9)}", qty=1)],
                    total=decimal.Decimal(rng.randint(5, 90)),
                ).save()
                self._open.append(order)


def register_templates() -> None:
    """Verbs with a template read as the template says; the others are
    described from their type, entity, user and changes."""
    Activity.register_template(
        "order_shipped",
        message="{{user_id|someone}} shipped order {{entity.id}} via {{carrier}}",
        icon="shipping",
    )


def create_app(*, simulate_every: float | None = 2.0, **stream: Any) -> Starlette:
    """The dashboard; ``simulate_every`` seconds the shop writes something."""
    register_templates()
    stop = threading.Event()

    def simulate() -> None:
        shop = ShopSimulation()
        assert simulate_every is not None
        while not stop.wait(simulate_every):
            shop.step()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if simulate_every:
            threading.Thread(target=simulate, daemon=True).start()
        yield
        stop.set()

    app = Starlette(
        routes=[
            Route("/", page),
            *activity_routes(sse_path=STREAM_PATH, **stream),
        ],
        lifespan=lifespan,
    )
    return app


def main() -> None:
    import mongoengine
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uri", help="MongoDB URI (mongomock when omitted)")
    parser.add_argument("--every", type=float, default=2.0, help="seconds per step")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    if args.uri:
        mongoengine.connect(host=args.uri)
    else:
        import mongomock

        mongoengine.connect("dashboard", mongo_client_class=mongomock.MongoClient)
    uvicorn.run(create_app(simulate_every=args.every or None), port=args.port)


if __name__ == "__main__":
    main()
