"""The default transform's rules in plain Python: no component glue here, so
this module can be unit-tested with any Python (`python3 -m unittest`).

- one row per price-list item, in price-list order, left-joined with the
  stock on the product id;
- `id`: the item's `product_id` in canonical form (`"0042"` and `42` are 42);
- `data`: the item without `product_id`, every other member kept, compact
  (as Python's json module writes it: `12345.0` stays `12345.0`, but `1.50`
  becomes `1.5`; the values are the same, which is what `plugin test`
  compares by default);
- `stock`: the stock item's `product_balance` truncated toward zero, 0 when
  there is none or it is null; stock items name their product by
  `product_id` or `product.id` (both, and different, is an error);
- stock items for products not in the price list are dropped and counted;
- a product twice in one source, malformed JSON, a page without an `items`
  array (or whose `count`/`total` exceeds the items it carries), or an
  item without a usable product id is an error naming what and where.
"""

import json
import math
from dataclasses import dataclass


@dataclass
class InputProblem(Exception):
    kind: str  # "malformed-body" or "invalid-item"
    source: str
    page: int
    message: str
    item: int | None = None
    product_id: str | None = None
    field: str | None = None


@dataclass
class Duplicate(Exception):
    source: str
    product_id: str


class ProtocolError(Exception):
    pass


ORDER = {"checkout": 0, "stock": 1, "price-list": 2}


def parse(text):
    # json's C parser and writer: parsing and writing in Python code, to keep
    # each number's spelling, took several times as long.
    return json.loads(text)


def compact(value):
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def canonical_id(value):
    """A product id: a whole non-negative number or a string of digits."""
    if isinstance(value, bool):
        raise ValueError(f"{compact(value)} is not a number or a numeric string")
    if isinstance(value, int):
        if 0 <= value <= 2**64 - 1:
            return str(value)
        raise ValueError(f"{value} is not a whole non-negative number")
    if isinstance(value, float):
        raise ValueError(f"{compact(value)} is not a whole non-negative number")
    if isinstance(value, str):
        digits = value.strip()
        if not digits or not digits.isascii() or not digits.isdigit():
            raise ValueError(f"{json.dumps(value)} is not a numeric id")
        if int(digits) > 2**64 - 1:
            raise ValueError(f"{json.dumps(value)} is too large for a product id")
        return str(int(digits))
    raise ValueError(f"{compact(value)} is not a number or a numeric string")


def balance_of(value):
    """A balance truncated toward zero."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        number = float(value.strip()) if isinstance(value, str) else float(value) if isinstance(value, float) else math.nan
    except ValueError:
        number = math.nan
    if math.isfinite(number) and abs(number) < 9.2e18:
        return math.trunc(number)
    raise ValueError(f"{compact(value)} is not a usable number")


class Merge:
    def __init__(self):
        self.last_source = None
        self.pages = {}
        self.stock = {}
        self.price_list_ids = set()
        self.pending = []  # (id, item) in price-list order
        self.next = 0
        self.finished = False
        self.stock_items = 0
        self.null_balances = 0

    def push(self, source, page):
        if self.finished:
            raise ProtocolError(f"a {source} page was pushed after finish")
        if self.last_source is not None and ORDER[source] < ORDER[self.last_source]:
            raise ProtocolError(
                f"a {source} page was pushed after a {self.last_source} page; "
                "push checkout, then stock, then price list"
            )
        self.last_source = source
        number = self.pages.get(source, 0)
        self.pages[source] = number + 1
        if source == "checkout":
            self.parse_page(source, number, page)
        elif source == "stock":
            for index, item in enumerate(self.items(source, number, page)):
                self.add_stock(number, index, item)
        else:
            for index, item in enumerate(self.items(source, number, page)):
                self.add_price_list_item(number, index, item)

    def parse_page(self, source, number, page):
        try:
            return parse(page.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise InputProblem("malformed-body", source, number, f"not valid JSON: {e}") from None

    def items(self, source, number, page):
        body = self.parse_page(source, number, page)
        if not isinstance(body, dict):
            raise InputProblem("malformed-body", source, number, "expected an object with an `items` array")
        items = body.get("items")
        if not isinstance(items, list):
            raise InputProblem("malformed-body", source, number, "no `items` array")
        for name in ("count", "total"):
            try:
                reported = float(body.get(name))
            except (TypeError, ValueError):
                continue
            if reported > len(items):
                raise InputProblem(
                    "malformed-body",
                    source,
                    number,
                    f"`{name}` says {reported} items but the page carries {len(items)}: the list is incomplete",
                )
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                raise InputProblem("invalid-item", source, number, "not a JSON object", item=index)
        return items

    def item_id(self, source, number, index, value, field):
        try:
            return canonical_id(value)
        except ValueError as e:
            raise InputProblem("invalid-item", source, number, str(e), item=index, field=field) from None

    def add_stock(self, number, index, item):
        flat = item.get("product_id")
        nested = item.get("product").get("id") if isinstance(item.get("product"), dict) else None
        flat = None if flat is None else self.item_id("stock", number, index, flat, "product_id")
        nested = None if nested is None else self.item_id("stock", number, index, nested, "product.id")
        if flat is not None and nested is not None and flat != nested:
            raise InputProblem(
                "invalid-item", "stock", number, f"product_id {flat} and product.id {nested} disagree",
                item=index, product_id=flat, field="product.id",
            )
        product = flat if flat is not None else nested
        if product is None:
            raise InputProblem(
                "invalid-item", "stock", number, "missing (neither `product_id` nor `product.id`)",
                item=index, field="product_id",
            )
        if "product_balance" not in item:
            raise InputProblem("invalid-item", "stock", number, "missing", item=index, product_id=product, field="product_balance")
        value = item["product_balance"]
        if value is None:
            self.null_balances += 1
            balance = 0
        else:
            try:
                balance = balance_of(value)
            except ValueError as e:
                raise InputProblem(
                    "invalid-item", "stock", number, str(e), item=index, product_id=product, field="product_balance"
                ) from None
        if product in self.stock:
            raise Duplicate("stock", product)
        self.stock[product] = balance
        self.stock_items += 1

    def add_price_list_item(self, number, index, item):
        if "product_id" not in item:
            raise InputProblem("invalid-item", "price-list", number, "missing", item=index, field="product_id")
        product = self.item_id("price-list", number, index, item["product_id"], "product_id")
        if product in self.price_list_ids:
            raise Duplicate("price-list", product)
        self.price_list_ids.add(product)
        self.pending.append((product, item))

    def finish(self):
        if self.finished:
            raise ProtocolError("finish was called twice")
        self.finished = True
        dropped = sum(1 for product in self.stock if product not in self.price_list_ids)
        return {
            "price_list_items": len(self.pending),
            "stock_items": self.stock_items,
            "dropped_stock_items": dropped,
            "rows": len(self.pending),
        }

    def next_batch(self, max_rows):
        """Up to `max_rows` rows (id, data, stock); none before the price list."""
        if not self.finished and self.last_source != "price-list":
            return []
        rows = []
        end = min(len(self.pending), self.next + max_rows)
        for n in range(self.next, end):
            product, item = self.pending[n]
            self.pending[n] = None  # freed as it goes
            del item["product_id"]
            rows.append((product, compact(item), self.stock.get(product, 0)))
        self.next = end
        return rows
