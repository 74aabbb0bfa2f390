"""A small FastAPI shop whose requests write activities with full context.

Run it without any server: ``python examples/fastapi_app.py`` connects to an
in-memory mongomock database, sends requests through Starlette's TestClient
(as if from behind a proxy at 10.0.0.2) and prints the activities they wrote.
With ``--serve`` it runs under uvicorn (if installed) on http://127.0.0.1:8000.

Needs the ``fastapi`` and ``mongomock`` extras (and ``httpx`` for the demo).
"""

from __future__ import annotations

import argparse
import json
import warnings

import mongoengine as me
from bson import json_util
from fastapi import Depends, FastAPI, Header, Request
from starlette.requests import HTTPConnection

from mongoengine_activity import Activity, TrackedDocument, log_activity
from mongoengine_activity.integrations.starlette import ActivityContextMiddleware


class StoreOrder(TrackedDocument):
    item = me.StringField(required=True)
    status = me.StringField(default="new")

    meta = {
        "collection": "example_fastapi_orders",
        "activity": {"entity_type": "Order"},
    }


def authenticate(request: Request, x_user: str | None = Header(None)) -> str | None:
    """A stand-in for real authentication: trusts an X-User header."""
    request.state.user = x_user
    return x_user


def current_user(connection: HTTPConnection) -> str | None:
    """The user getter: whoever ``authenticate`` put on the request state."""
    return getattr(connection.state, "user", None)


def create_app() -> FastAPI:
    app = FastAPI()
    app.add_middleware(
        ActivityContextMiddleware,
        trusted_proxies=["10.0.0.0/8"],
        user_getter=current_user,
    )

    @app.post("/orders/{item}")
    async def create_order(
        item: str, user: str | None = Depends(authenticate)
    ) -> dict[str, str]:
        order = StoreOrder(item=item).save()
        return {"id": str(order.pk)}

    @app.post("/orders/{order_id}/ship")
    def ship(order_id: str, user: str | None = Depends(authenticate)) -> dict[str, str]:
        # A sync endpoint: FastAPI runs it in a thread pool, context included.
        order = StoreOrder.objects.get(pk=order_id)
        order.status = "shipped"
        order.save()
        log_activity("order_shipped", entity=order, data={"carrier": "UPS"})
        return {"status": order.status}

    return app


def demo() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # newer Starlette prefers httpx2
        from starlette.testclient import TestClient

    client = TestClient(create_app(), client=("10.0.0.2", 40000))
    headers = {
        "X-Forwarded-For": "198.51.100.42",
        "User-Agent": "ExampleApp/2.0",
        "X-User": "bob",
    }
    order_id = client.post(
        "/orders/lamp", headers={**headers, "X-Request-ID": "req-create"}
    ).json()["id"]
    client.post(f"/orders/{order_id}/ship", headers=headers)

    for activity in Activity.objects.order_by("created_at", "id"):
        son = activity.to_mongo().to_dict()
        shown = {key: son[key] for key in ("type", "userId", "context")}
        print(json.dumps(shown, default=json_util.default))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help="run under uvicorn")
    arguments = parser.parse_args()

    import mongomock

    me.connect(db="example_fastapi", mongo_client_class=mongomock.MongoClient)
    if arguments.serve:
        import uvicorn

        uvicorn.run(create_app(), host="127.0.0.1", port=8000)
    else:
        demo()


if __name__ == "__main__":
    main()
