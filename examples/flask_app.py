"""A small Flask shop whose requests write activities with full context.

Run it without any server: ``python examples/flask_app.py`` connects to an
in-memory mongomock database, sends three requests through Flask's test client
(as if from behind a proxy at 10.0.0.2) and prints the activities they wrote.
With ``--serve`` it listens on http://127.0.0.1:5000 instead.

Needs the ``flask`` and ``mongomock`` extras.
"""

from __future__ import annotations

import argparse
import json

import flask
import mongoengine as me
from bson import json_util

from mongoengine_activity import Activity, TrackedDocument, log_activity
from mongoengine_activity.integrations.flask import ActivityContext


class ShopOrder(TrackedDocument):
    item = me.StringField(required=True)
    status = me.StringField(default="new")

    meta = {"collection": "example_flask_orders", "activity": {"entity_type": "Order"}}


def current_user(request: flask.Request) -> str | None:
    """The user getter: here the session's user, set by /login."""
    user = flask.session.get("user")
    return None if user is None else str(user)


def create_app() -> flask.Flask:
    app = flask.Flask(__name__)
    app.secret_key = "example only"
    ActivityContext(app, trusted_proxies=["10.0.0.0/8"], user_getter=current_user)

    @app.post("/login/<name>")
    def login(name: str) -> dict[str, str]:
        flask.session["user"] = name
        return {"user": name}

    @app.post("/orders/<item>")
    def create_order(item: str) -> dict[str, str]:
        order = ShopOrder(item=item).save()
        return {"id": str(order.pk)}

    @app.post("/orders/<order_id>/ship")
    def ship(order_id: str) -> dict[str, str]:
        order = ShopOrder.objects.get(pk=order_id)
        order.status = "shipped"
        order.save()
        log_activity("order_shipped", entity=order, data={"carrier": "DHL"})
        return {"status": order.status}

    return app


def demo() -> None:
    client = create_app().test_client()
    proxy = {"REMOTE_ADDR": "10.0.0.2"}
    headers = {
        "X-Forwarded-For": "198.51.100.23",
        "User-Agent": "ExampleBrowser/1.0",
    }
    client.post("/login/ann", environ_base=proxy, headers=headers)
    order_id = client.post(
        "/orders/book",
        environ_base=proxy,
        headers={**headers, "X-Request-ID": "req-create"},
    ).json["id"]  # type: ignore[index]
    client.post(f"/orders/{order_id}/ship", environ_base=proxy, headers=headers)

    for activity in Activity.objects.order_by("created_at", "id"):
        son = activity.to_mongo().to_dict()
        shown = {key: son[key] for key in ("type", "userId", "context")}
        print(json.dumps(shown, default=json_util.default))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help="run a dev server")
    arguments = parser.parse_args()

    import mongomock

    me.connect(db="example_flask", mongo_client_class=mongomock.MongoClient)
    if arguments.serve:
        create_app().run(host="127.0.0.1", port=5000)
    else:
        demo()


if __name__ == "__main__":
    main()
