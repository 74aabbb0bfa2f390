"""A simulated shop whose models are tracked: the demo's models, scenario and
printout.

The scenario is driven by a seeded random generator, so a seed always plays the
same operations. While it runs it counts, per activity type, the activities its
operations must write (and the operations that by design write nothing); the
printout sets those expectations beside what the log really holds.

Everything the demo stores lives in collections whose names start with
``demo_`` (its activities go to ``demo_activities``), and the demo empties them
before it starts, so it never touches an application's data.
"""

from __future__ import annotations

import datetime as dt
import decimal
import random
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import mongoengine as me
from bson import Decimal128, ObjectId

from . import Activity, TrackedDocument, activity_context, log_activity
from .options import configure, current_settings

__all__ = [
    "ACTIVITY_COLLECTION",
    "DemoComment",
    "DemoCustomer",
    "DemoOrder",
    "DemoPayment",
    "DemoProduct",
    "DemoReport",
    "format_value",
    "run",
    "simulate",
]

ACTIVITY_COLLECTION = "demo_activities"

Echo = Callable[[str], None]

# --- the shop's models


class DemoAddress(me.EmbeddedDocument):  # type: ignore[misc]
    street = me.StringField()
    city = me.StringField()
    zip_code = me.StringField(db_field="zip")


class DemoLineItem(me.EmbeddedDocument):  # type: ignore[misc]
    sku = me.StringField(required=True)
    name = me.StringField()
    qty = me.IntField(min_value=1)
    unit_price = me.Decimal128Field()


class DemoCustomer(TrackedDocument):
    name = me.StringField(required=True)
    email = me.StringField()
    address = me.EmbeddedDocumentField(DemoAddress)
    preferences = me.DictField()
    last_seen = me.DateTimeField()

    meta = {
        "collection": "demo_customers",
        "activity": {"entity_type": "Customer", "exclude": ["last_seen"]},
    }


class DemoProduct(TrackedDocument):
    sku = me.StringField(required=True, unique=True)
    name = me.StringField()
    price = me.Decimal128Field()
    stock = me.IntField(default=0)
    tags = me.ListField(me.StringField())
    views = me.IntField(default=0)

    meta = {
        "collection": "demo_products",
        "activity": {"entity_type": "Product", "exclude": ["views"]},
    }


class DemoOrder(TrackedDocument):
    number = me.StringField(required=True)
    customer = me.ReferenceField(DemoCustomer)
    store = me.StringField()
    status = me.StringField(default="new")
    items = me.ListField(me.EmbeddedDocumentField(DemoLineItem))
    shipping_address = me.EmbeddedDocumentField(DemoAddress)
    total = me.Decimal128Field()
    notes = me.DictField()
    updated_at = me.DateTimeField()

    meta = {
        "collection": "demo_orders",
        "activity": {
            "entity_type": "Order",
            "team_field": "store",
            "exclude": ["updated_at"],
        },
    }


class DemoPayment(TrackedDocument):
    order = me.ReferenceField(DemoOrder, reverse_delete_rule=me.CASCADE)
    amount = me.Decimal128Field()
    status = me.StringField(default="captured")
    card = me.DictField()

    meta = {
        "collection": "demo_payments",
        "activity": {"entity_type": "Payment", "mask_fields": ["card.number"]},
    }


class DemoComment(TrackedDocument):
    order = me.ReferenceField(DemoOrder, reverse_delete_rule=me.CASCADE)
    author = me.StringField()
    body = me.StringField()
    flagged = me.BooleanField(default=False)

    meta = {
        "collection": "demo_comments",
        "activity": {
            "entity_type": "Comment",
            "user_field": "author",
            "types": {
                "create": "comment_posted",
                "update": "comment_edited",
                "delete": "comment_removed",
            },
        },
    }


_MODELS: tuple[type[TrackedDocument], ...] = (
    DemoCustomer,
    DemoProduct,
    DemoOrder,
    DemoPayment,
    DemoComment,
)

# --- what the shop sells and where its customers live

_CATALOG = (
    ("KB-101", "Mechanical keyboard", "89.00", "input"),
    ("MS-202", "Wireless mouse", "34.50", "input"),
    ("MN-303", "27-inch monitor", "279.00", "display"),
    ("HD-404", "Noise-cancelling headphones", "199.90", "audio"),
    ("CB-505", "USB-C cable", "12.99", "cable"),
    ("DK-606", "Docking station", "149.00", "hub"),
    ("WC-707", "HD webcam", "64.00", "video"),
    ("SP-808", "Desk speakers", "79.00", "audio"),
    ("LS-909", "Laptop stand", "45.00", "desk"),
    ("MP-010", "Large mouse pad", "19.50", "desk"),
    ("CH-111", "Fast charger", "29.90", "power"),
    ("SS-212", "Portable SSD 1 TB", "119.00", "storage"),
)
_DISCONTINUED = ("MP-010", "CH-111")
_NAMES = (
    "Ada Berg",
    "Bo Lind",
    "Cai Moe",
    "Dina Holm",
    "Eli Strand",
    "Finn Aas",
    "Gro Dahl",
    "Hans Vik",
    "Ida Lie",
    "Jon Sand",
)
_CITIES = (
    ("Oslo", "0150"),
    ("Bergen", "5003"),
    ("Trondheim", "7010"),
    ("Stavanger", "4006"),
    ("Tromsø", "9008"),
    ("Bodø", "8006"),
)
_STREETS = ("Storgata", "Kirkeveien", "Bryggen", "Parkveien", "Strandgata")
_STORES = ("oslo", "bergen", "online")
_STAFF = ("staff-1", "staff-2", "staff-3")
_CARRIERS = ("UPS", "DHL", "Posten")
_WINDOWS = ("morning", "afternoon", "evening")
_COMMENTS = (
    "Can you deliver before Friday?",
    "Please leave it with the neighbour.",
    "Gift wrap, please.",
    "Is the monitor in stock?",
    "Thanks, arrived safely!",
)
_SPAM = "Cheap watches at example dot invalid!!!"


# --- the scenario


@dataclass
class DemoReport:
    """What a run of the scenario did, counted by the scenario itself.

    ``expected`` counts, per activity type, the activities the operations must
    have written; ``silent`` counts operations that by design write nothing;
    ``card_numbers`` are the card numbers paid with (masked everywhere in the
    log); ``featured_order`` is the order whose history is printed.
    """

    seed: int
    operations: int = 0
    expected: Counter[str] = field(default_factory=Counter)
    silent: Counter[str] = field(default_factory=Counter)
    card_numbers: list[str] = field(default_factory=list)
    featured_order: Any = None


@dataclass
class _Order:
    document: DemoOrder
    user: str
    payment: DemoPayment | None = None


@dataclass
class _Comment:
    document: DemoComment
    order: _Order


class _Shop:
    """The scenario's state: live documents, the random generator, the tally."""

    def __init__(self, seed: int, clock: Callable[[], dt.datetime]) -> None:
        self.rng = random.Random(seed)
        self.clock = clock
        self.report = DemoReport(seed=seed)
        self.products: list[DemoProduct] = []
        self.customers: list[tuple[str, DemoCustomer]] = []
        self.orders: list[_Order] = []
        self.comments: list[_Comment] = []
        self.invoices: set[str] = set()
        self._requests = 0

    # -- bookkeeping

    @contextmanager
    def acting(self, user: str) -> Iterator[None]:
        """One request by ``user``: one operation of the scenario."""
        self._requests += 1
        self.report.operations += 1
        with activity_context(user_id=user, request_id=f"req-{self._requests:04d}"):
            yield

    def expect(self, activity_type: str, count: int = 1) -> None:
        self.report.expected[activity_type] += count

    def silent(self, why: str) -> None:
        self.report.silent[why] += 1

    def open_orders(self, *statuses: str) -> list[_Order]:
        return [order for order in self.orders if order.document.status in statuses]

    # -- setting up the shop

    def stock_catalog(self) -> None:
        for sku, name, price, tag in _CATALOG:
            with self.acting("staff-1"):
                product = DemoProduct(
                    sku=sku,
                    name=name,
                    price=decimal.Decimal(price),
                    stock=self.rng.randint(20, 60),
                    tags=[tag],
                ).save()
            self.expect("product_created")
            self.products.append(product)

    def sign_up_customers(self) -> None:
        for number, name in enumerate(_NAMES, start=1):
            user = f"cust-{number}"
            city, zip_code = self.rng.choice(_CITIES)
            with self.acting(user):
                customer = DemoCustomer(
                    name=name,
                    email=f"{name.split()[0].lower()}@example.com",
                    address=DemoAddress(
                        street=f"{self.rng.choice(_STREETS)} {self.rng.randint(1, 90)}",
                        city=city,
                        zip_code=zip_code,
                    ),
                    preferences={"newsletter": self.rng.random() < 0.5, "lang": "en"},
                    last_seen=self.clock(),
                ).save()
            self.expect("customer_created")
            self.customers.append((user, customer))

    # -- what happens in the shop, one operation each

    def place_order(self) -> None:
        user, customer = self.rng.choice(self.customers)
        picked = self.rng.sample(self.products, self.rng.randint(2, 4))
        address = customer.address
        with self.acting(user):
            order = DemoOrder(
                number=f"SO-{1001 + len(self.orders)}",
                customer=customer,
                store=self.rng.choice(_STORES),
                items=[
                    DemoLineItem(
                        sku=product.sku,
                        name=product.name,
                        qty=self.rng.randint(1, 3),
                        unit_price=product.price,
                    )
                    for product in picked
                ],
                shipping_address=DemoAddress(
                    street=address.street, city=address.city, zip_code=address.zip_code
                ),
                notes={"gift": False},
                updated_at=self.clock(),
            )
            _retotal(order)
            order.save()
        self.expect("order_created")
        self.orders.append(_Order(order, user))

    def change_quantity(self) -> None:
        candidates = self.open_orders("new")
        if not candidates:
            return self.place_order()

        order = self.rng.choice(candidates)
        with self.acting(order.user):
            item = self.rng.choice(order.document.items)
            item.qty += self.rng.randint(1, 2)
            _retotal(order.document)
            order.document.updated_at = self.clock()
            order.document.save()
        self.expect("order_updated")

    def add_item(self) -> None:
        candidates = self.open_orders("new")
        if not candidates:
            return self.place_order()

        order = self.rng.choice(candidates)
        present = {item.sku for item in order.document.items}
        product = self.rng.choice([p for p in self.products if p.sku not in present])
        with self.acting(order.user):
            order.document.items.append(
                DemoLineItem(
                    sku=product.sku, name=product.name, qty=1, unit_price=product.price
                )
            )
            _retotal(order.document)
            order.document.save()
        self.expect("order_updated")

    def remove_item(self) -> None:
        candidates = [o for o in self.open_orders("new") if len(o.document.items) > 1]
        if not candidates:
            return self.add_item()

        order = self.rng.choice(candidates)
        with self.acting(order.user):
            order.document.items.pop(self.rng.randrange(len(order.document.items)))
            _retotal(order.document)
            order.document.save()
        self.expect("order_updated")

    def change_address(self) -> None:
        candidates = self.open_orders("new", "paid")
        if not candidates:
            return self.place_order()

        order = self.rng.choice(candidates)
        address = order.document.shipping_address
        city, zip_code = self.rng.choice([c for c in _CITIES if c[0] != address.city])
        with self.acting(order.user):
            address.city = city
            address.zip_code = zip_code
            order.document.save()
        self.expect("order_updated")

    def edit_notes(self) -> None:
        candidates = self.open_orders("new", "paid")
        if not candidates:
            return self.place_order()

        order = self.rng.choice(candidates)
        notes = order.document.notes
        with self.acting(order.user):
            if self.rng.random() < 0.4:
                notes["gift"] = not notes["gift"]
            else:
                delivery = notes.setdefault("delivery", {})
                choices = [w for w in _WINDOWS if w != delivery.get("window")]
                delivery["window"] = self.rng.choice(choices)
            order.document.save()
        self.expect("order_updated")

    def pay(self) -> None:
        candidates = self.open_orders("new")
        if not candidates:
            return self.place_order()

        order = self.rng.choice(candidates)
        card_number = "4" + "".join(str(self.rng.randrange(10)) for _ in range(15))
        self.report.card_numbers.append(card_number)
        with self.acting(order.user):
            order.payment = DemoPayment(
                order=order.document,
                amount=order.document.total,
                card={
                    "brand": "visa",
                    "number": card_number,
                    "exp": f"{self.rng.randint(1, 12):02d}/{self.rng.randint(27, 31)}",
                },
            ).save()
            order.document.status = "paid"
            order.document.save()
            # Stock goes down for what is still sold (not discontinued).
            by_sku = {product.sku: product for product in self.products}
            sold = [item for item in order.document.items if item.sku in by_sku]
            for item in sold:
                by_sku[item.sku].stock -= item.qty
                by_sku[item.sku].save()
        self.expect("payment_created")
        self.expect("order_updated")
        self.expect("product_updated", len(sold))

    def ship(self) -> None:
        candidates = self.open_orders("paid")
        if not candidates:
            return self.pay()

        order = self.rng.choice(candidates)
        event_id = f"ship-{order.document.number}"
        data = {
            "carrier": self.rng.choice(_CARRIERS),
            "tracking": f"TR{self.rng.randrange(10**8):08d}",
        }
        with self.acting(self.rng.choice(_STAFF)):
            # Staff work on a freshly loaded order, not the customer's instance.
            loaded = DemoOrder.objects.get(pk=order.document.pk)
            loaded.status = "shipped"
            loaded.save()
            order.document = loaded
            log_activity("order_shipped", entity=loaded, data=data, event_id=event_id)
        self.expect("order_updated")
        self.expect("order_shipped")
        if self.rng.random() < 0.35:
            # The carrier's webhook fires again: same event id, written once.
            with self.acting("carrier-webhook"):
                log_activity(
                    "order_shipped", entity=loaded, data=data, event_id=event_id
                )
            self.silent("repeated event_id (written once)")

    def deliver(self) -> None:
        candidates = self.open_orders("shipped")
        if not candidates:
            return self.ship()

        order = self.rng.choice(candidates)
        with self.acting(self.rng.choice(_STAFF)):
            order.document.status = "delivered"
            order.document.save()
        self.expect("order_updated")

    def cancel(self) -> None:
        candidates = self.open_orders("new", "paid")
        if not candidates:
            return self.place_order()

        order = self.rng.choice(candidates)
        with self.acting(self.rng.choice(_STAFF)):
            order.document.status = "cancelled"
            order.document.save()
            if order.payment is not None:
                order.payment.status = "refunded"
                order.payment.save()
                self.expect("payment_updated")
        self.expect("order_updated")

    def send_invoice(self) -> None:
        candidates = self.open_orders("paid", "shipped", "delivered")
        if not candidates:
            return self.pay()

        order = self.rng.choice(candidates)
        event_id = f"invoice-{order.document.number}"
        with self.acting("billing"):
            log_activity(
                "invoice_sent",
                entity=order.document,
                data={"amount": order.document.total, "to": "customer email"},
                event_id=event_id,
            )
        if event_id in self.invoices:
            self.silent("repeated event_id (written once)")
        else:
            self.invoices.add(event_id)
            self.expect("invoice_sent")

    def comment(self) -> None:
        if not self.orders:
            return self.place_order()

        order = self.rng.choice(self.orders)
        spam = self.rng.random() < 0.2
        author = "cust-99" if spam else self.rng.choice((order.user, *_STAFF))
        with self.acting(author):
            document = DemoComment(
                order=order.document,
                author=author,
                body=_SPAM if spam else self.rng.choice(_COMMENTS),
                flagged=spam,
            ).save()
        self.expect("comment_posted")
        self.comments.append(_Comment(document, order))

    def edit_comment(self) -> None:
        candidates = [c for c in self.comments if not c.document.flagged]
        if not candidates:
            return self.comment()

        comment = self.rng.choice(candidates)
        with self.acting(comment.document.author):
            comment.document.body += " (edited)"
            comment.document.save()
        self.expect("comment_edited")

    def reprice(self) -> None:
        product = self.rng.choice(self.products)
        with self.acting("staff-1"):
            if self.rng.random() < 0.5:
                cents = decimal.Decimal(self.rng.choice((-500, -250, 250, 1000)))
                product.price = product.price + cents / 100
            else:
                product.stock += self.rng.randint(5, 20)
                if "restocked" not in product.tags:
                    product.tags.append("restocked")
            product.save()
        self.expect("product_updated")

    def view_product(self) -> None:
        product = self.rng.choice(self.products)
        with self.acting(self.rng.choice(self.customers)[0]):
            product.views += 1
            product.save()
        self.silent("only excluded fields changed")

    def move_customer(self) -> None:
        user, customer = self.rng.choice(self.customers)
        city, zip_code = self.rng.choice(
            [c for c in _CITIES if c[0] != customer.address.city]
        )
        with self.acting(user):
            customer.address.city = city
            customer.address.zip_code = zip_code
            customer.preferences["newsletter"] = not customer.preferences["newsletter"]
            customer.last_seen = self.clock()
            customer.save()
        self.expect("customer_updated")

    def customer_seen(self) -> None:
        user, customer = self.rng.choice(self.customers)
        with self.acting(user):
            customer.last_seen = self.clock()
            customer.save()
        self.silent("only excluded fields changed")

    def save_unchanged(self) -> None:
        if not self.orders:
            return self.place_order()

        order = self.rng.choice(self.orders)
        with self.acting(order.user):
            order.document.save()
        self.silent("save without changes")

    # -- closing time: the deletes

    def remove_spam(self) -> None:
        """A moderator deletes all flagged comments with one queryset delete."""
        spam = [c for c in self.comments if c.document.flagged]
        with self.acting("staff-2"):
            DemoComment.objects(flagged=True).delete()
        self.expect("comment_removed", len(spam))
        self.comments = [c for c in self.comments if not c.document.flagged]

    def purge_cancelled(self) -> None:
        """Deleting a cancelled order cascades to its payment and comments."""
        for order in self.open_orders("cancelled"):
            comments = [c for c in self.comments if c.order is order]
            with self.acting("staff-1"):
                order.document.delete()
            self.expect("order_deleted")
            self.expect("payment_deleted", 0 if order.payment is None else 1)
            self.expect("comment_removed", len(comments))
            self.comments = [c for c in self.comments if c.order is not order]
            self.orders.remove(order)

    def discontinue(self) -> None:
        """Discontinued products go with one queryset delete."""
        with self.acting("staff-1"):
            DemoProduct.objects(sku__in=_DISCONTINUED).delete()
        self.expect("product_deleted", len(_DISCONTINUED))
        self.products = [p for p in self.products if p.sku not in _DISCONTINUED]


_ACTIONS: tuple[tuple[Callable[[_Shop], None], int], ...] = (
    (_Shop.place_order, 8),
    (_Shop.change_quantity, 6),
    (_Shop.add_item, 3),
    (_Shop.remove_item, 2),
    (_Shop.change_address, 2),
    (_Shop.edit_notes, 3),
    (_Shop.pay, 5),
    (_Shop.ship, 4),
    (_Shop.deliver, 3),
    (_Shop.cancel, 2),
    (_Shop.send_invoice, 2),
    (_Shop.comment, 5),
    (_Shop.edit_comment, 1),
    (_Shop.reprice, 2),
    (_Shop.view_product, 3),
    (_Shop.move_customer, 1),
    (_Shop.customer_seen, 2),
    (_Shop.save_unchanged, 1),
)


def _retotal(order: DemoOrder) -> None:
    order.total = sum(
        (item.unit_price * item.qty for item in order.items),
        decimal.Decimal("0.00"),
    )


def _clear() -> None:
    """Empty the demo's collections, the log through the database directly:
    pointing ``Activity`` at a collection creates its indexes, and mongomock
    cannot create the unique ``eventId`` index over existing activities."""
    for model in _MODELS:
        model._get_collection().delete_many({})
    me.get_db(current_settings().db_alias)[ACTIVITY_COLLECTION].delete_many({})


@contextmanager
def _demo_log() -> Iterator[None]:
    """Send activities to the demo's own collection for the block."""
    previous = current_settings().collection
    if previous == ACTIVITY_COLLECTION:
        yield
        return

    configure(collection=ACTIVITY_COLLECTION)
    try:
        yield
    finally:
        configure(collection=previous)


def simulate(
    *, steps: int = 300, seed: int = 7, clock: Callable[[], dt.datetime] | None = None
) -> DemoReport:
    """Play the shop's scenario: set-up, ``steps`` random operations, deletes.

    Writes into the ``demo_*`` collections of the default connection, which it
    empties first, with activities in ``demo_activities``; the activity
    collection setting in force is restored afterwards.
    """
    _clear()
    with _demo_log():
        shop = _Shop(seed, clock or (lambda: dt.datetime.now(dt.UTC)))
        shop.stock_catalog()
        shop.sign_up_customers()
        actions = [action for action, _ in _ACTIONS]
        weights = [weight for _, weight in _ACTIONS]
        for step, action in enumerate(shop.rng.choices(actions, weights, k=steps)):
            if step == steps // 2:
                shop.discontinue()
            action(shop)
        if steps == 0:
            shop.discontinue()
        shop.remove_spam()
        shop.purge_cancelled()
        shop.report.expected = +shop.report.expected
        shop.report.featured_order = _featured_order(shop)

    return shop.report


def _featured_order(shop: _Shop) -> Any:
    """The live order with the most activities (the first such, on ties)."""
    if not shop.orders:
        return None

    counts = Counter(
        activity["entity"]["id"]
        for activity in Activity._get_collection().find(
            {"entity.type": "Order"}, {"entity.id": 1}
        )
    )
    return max(shop.orders, key=lambda o: counts[o.document.pk]).document.pk


# --- printing


def format_value(value: Any, width: int = 48) -> str:
    """A stored value as a person reads it: decimals as numbers, ids short."""
    text = _plain(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _plain(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Decimal128):
        return str(value.to_decimal())
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, ObjectId):
        return _short_id(value)
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, str):
        return value if value else '""'
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {_plain(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_plain(item) for item in value) + "]"

    return str(value)


def _short_id(value: Any) -> str:
    """The distinctive tail of an ObjectId (its head is a timestamp)."""
    text = str(value)
    return ".." + text[-6:] if isinstance(value, ObjectId) else text


def _describe(activity: Activity, width: int = 90) -> str:
    """One line saying what an activity changed, cut to about ``width``."""
    parts: list[str] = []
    for change in activity.changes:
        if change["from"] is None:
            parts.append(f"{change['path']}={format_value(change['to'], 28)}")
        elif change["to"] is None:
            parts.append(f"{change['path']} was {format_value(change['from'], 28)}")
        else:
            parts.append(
                f"{change['path']}: {format_value(change['from'], 24)}"
                f" -> {format_value(change['to'], 24)}"
            )
    parts.extend(f"{k}={format_value(v, 28)}" for k, v in (activity.data or {}).items())

    shown: list[str] = []
    for index, part in enumerate(parts):
        if shown and len(", ".join([*shown, part])) > width:
            shown.append(f"(+{len(parts) - index} more)")
            break
        shown.append(part)
    return ", ".join(shown)


def _stamp(activity: Activity) -> str:
    created: dt.datetime = activity.created_at
    return created.strftime("%H:%M:%S.") + f"{created.microsecond // 1000:03d}"


def _feed_line(activity: Activity) -> str:
    entity = f"{activity.entity.type} {_short_id(activity.entity.id)}"
    return (
        f"{_stamp(activity)}  {format_value(activity.user_id, 9):<9}  "
        f"{activity.type:<16} {entity:<16}  {_describe(activity, 64)}"
    )


def _print_changes(echo: Echo, activity: Activity, indent: str) -> None:
    for change in activity.changes:
        echo(
            f"{indent}{change['path']}: {format_value(change['from'], 60)}"
            f" -> {format_value(change['to'], 60)}"
        )
    for key, value in (activity.data or {}).items():
        echo(f"{indent}{key} = {format_value(value, 60)}")


def _print_feed(echo: Echo, limit: int) -> None:
    total = Activity.objects.count()
    echo(f"Activity feed, newest first ({min(limit, total)} of {total}):")
    for activity in Activity.objects.order_by("-created_at", "-id").limit(limit):
        echo("  " + _feed_line(activity))


def _print_history(echo: Echo, order_id: Any) -> None:
    order = DemoOrder.objects.get(pk=order_id)
    echo(
        f"\nHistory of order {order.number} (Order {_short_id(order_id)}, "
        f"store {order.store}), oldest first:"
    )
    history = Activity.objects(
        __raw__={"entity.type": "Order", "entity.id": order_id}
    ).order_by("created_at", "id")
    for activity in history:
        request = activity.context.get("requestId", "-")
        team = f"  team {activity.team_id}" if activity.team_id else ""
        echo(
            f"  {_stamp(activity)}  {activity.type:<14}  by "
            f"{format_value(activity.user_id)}  [{request}]{team}"
        )
        _print_changes(echo, activity, "      ")

    payments = list(DemoPayment.objects(order=order_id).scalar("id"))
    if payments:
        echo("  its payment, as logged (the card number is masked):")
        for activity in Activity.objects(
            __raw__={"entity.type": "Payment", "entity.id": {"$in": payments}}
        ).order_by("created_at", "id"):
            echo(f"    {_stamp(activity)}  {activity.type}")
            _print_changes(echo, activity, "      ")


def _print_counts(echo: Echo, report: DemoReport) -> None:
    logged = Counter(
        activity["type"]
        for activity in Activity._get_collection().find({}, {"type": 1})
    )
    echo("\nActivities per type. logged: read back from the log; expected: counted")
    echo("by the scenario from the operations it made.")
    echo(f"  {'type':<18}{'logged':>8}{'expected':>10}")
    for verb in sorted(set(logged) | set(report.expected)):
        mark = "" if logged[verb] == report.expected[verb] else "  MISMATCH"
        echo(f"  {verb:<18}{logged[verb]:>8}{report.expected[verb]:>10}{mark}")
    echo(f"  {'total':<18}{sum(logged.values()):>8}{sum(report.expected.values()):>10}")
    echo(f"\n{report.operations} operations (seed {report.seed}); of them, these")
    echo("wrote nothing, by design:")
    for why, count in sorted(report.silent.items()):
        echo(f"  {count:>4}  {why}")
    if not report.silent:
        echo("     -  (none)")


def run(
    *, steps: int = 300, seed: int = 7, feed: int = 40, echo: Echo = print
) -> DemoReport:
    """Play the scenario and print the feed, one order's history and the counts."""
    _clear()
    with _demo_log():
        report = simulate(steps=steps, seed=seed)
        _print_feed(echo, feed)
        if report.featured_order is not None:
            _print_history(echo, report.featured_order)
        _print_counts(echo, report)

    return report
