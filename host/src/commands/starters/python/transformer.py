"""The `transform` resource: one run's transform.

It makes one row per price-list item, in price-list order: `id` is the
item's `product_id` as text, `data` the item without `product_id`, and
`stock` the `product_balance` of the stock item with the same `product_id`
(truncated toward zero; 0 when there is none). Change the rules in `push`;
the golden cases in `cases/` say what the rows must be.
"""

import json
import math

from componentize_py_types import Err
from wit_world.exports import transformer
from wit_world.imports import log, types


def input_error(source, page, message, item=None, field=None):
    return types.InputError(source=source, page=page, item=item, product_id=None, field=field, message=message)


def product_id(value):
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    return value if isinstance(value, str) else json.dumps(value)


class Transform(transformer.Transform):
    def __init__(self, context: types.RunContext) -> None:
        log.log(log.Level.DEBUG, f"transform for checkout {context.checkout_number}")
        self.pages = {}
        self.stock = {}
        self.stock_items = 0
        self.items = []  # (id, data), in price-list order
        self.next = 0
        self.finished = False

    def push(self, source: types.Source, page: bytes) -> None:
        number = self.pages.get(source, 0)
        self.pages[source] = number + 1
        try:
            body = json.loads(page)
        except ValueError as e:
            raise Err(types.TransformError_MalformedBody(input_error(source, number, f"not valid JSON: {e}")))
        if source == types.Source.CHECKOUT:
            return
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise Err(types.TransformError_MalformedBody(input_error(source, number, "no `items` array")))
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                raise Err(types.TransformError_InvalidItem(input_error(source, number, "not a JSON object", index)))
            id = product_id(item.get("product_id"))
            if id is None:
                message = "missing, or not a number or a string"
                raise Err(types.TransformError_InvalidItem(input_error(source, number, message, index, "product_id")))
            if source == types.Source.STOCK:
                balance = item.get("product_balance")
                self.stock[id] = math.trunc(balance) if isinstance(balance, (int, float)) else 0
                self.stock_items += 1
            else:
                data = {k: v for k, v in item.items() if k != "product_id"}
                self.items.append((id, json.dumps(data, separators=(",", ":"), ensure_ascii=False)))

    def finish(self) -> types.Summary:
        if self.finished:
            raise Err(types.TransformError_Protocol("finish was called twice"))
        self.finished = True
        listed = {id for id, _ in self.items}
        dropped = sum(1 for id in self.stock if id not in listed)
        return types.Summary(
            price_list_items=len(self.items), stock_items=self.stock_items, dropped_stock_items=dropped, rows=len(self.items)
        )

    def next_batch(self, max_rows: int) -> list[types.Row]:
        if not self.finished:
            return []
        batch = self.items[self.next : self.next + max_rows]
        self.next += len(batch)
        return [types.Row(id=id, data=data, stock=self.stock.get(id, 0)) for id, data in batch]
