"""The README's quick start as a script: track a model and read its history.

Run it with ``python examples/quickstart.py`` (mongomock) or set MONGODB_URI.
"""

from __future__ import annotations

import os

import mongoengine as me

from mongoengine_activity import (
    Activity,
    TrackedDocument,
    activity_context,
    log_activity,
)


class Order(TrackedDocument):
    status = me.StringField()
    total = me.DecimalField()
    card = me.DictField()
    meta = {"activity": {"mask_fields": ["card.number"]}}


def main() -> None:
    uri = os.environ.get("MONGODB_URI")
    if uri:
        me.connect("quickstart", host=uri, uuidRepresentation="standard")
    else:
        import mongomock

        me.connect(
            "quickstart",
            mongo_client_class=mongomock.MongoClient,
            uuidRepresentation="standard",
        )

    with activity_context(user_id="u-42", request_id="req-1"):
        order = Order(status="new", total=10, card={"number": "4111111111111111"})
        order.save()
        order.status = "paid"
        order.save()
        log_activity("order_shipped", entity=order, data={"carrier": "UPS"})

    history = Activity.objects(entity__id=order.pk).order_by("created_at")
    for activity in history:
        print(activity.type, activity.user_id, activity.context, activity.changes)


if __name__ == "__main__":
    main()
