"""The `transform` resource: one run's transform, for componentize-py."""

from componentize_py_types import Err
from wit_world.exports import transformer
from wit_world.imports import log, types

import merge

SOURCES = {
    types.Source.CHECKOUT: "checkout",
    types.Source.STOCK: "stock",
    types.Source.PRICE_LIST: "price-list",
}
SOURCE_OF = {name: source for source, name in SOURCES.items()}


def contract_error(e: Exception) -> Err:
    """A `merge` exception as the contract's `transform-error`."""
    if isinstance(e, merge.InputProblem):
        where = types.InputError(
            source=SOURCE_OF[e.source],
            page=e.page,
            item=e.item,
            product_id=e.product_id,
            field=e.field,
            message=e.message,
        )
        if e.kind == "malformed-body":
            return Err(types.TransformError_MalformedBody(where))
        return Err(types.TransformError_InvalidItem(where))
    if isinstance(e, merge.Duplicate):
        return Err(types.TransformError_DuplicateKey(types.DuplicateKey(SOURCE_OF[e.source], e.product_id)))
    if isinstance(e, merge.ProtocolError):
        return Err(types.TransformError_Protocol(str(e)))
    return Err(types.TransformError_Other(f"{type(e).__name__}: {e}"))


class Transform(transformer.Transform):
    def __init__(self, context: types.RunContext) -> None:
        self.merge = merge.Merge()

    def push(self, source: types.Source, page: bytes) -> None:
        try:
            self.merge.push(SOURCES[source], page)
        except (merge.InputProblem, merge.Duplicate, merge.ProtocolError) as e:
            raise contract_error(e)

    def finish(self) -> types.Summary:
        try:
            counts = self.merge.finish()
        except merge.ProtocolError as e:
            raise contract_error(e)
        if self.merge.null_balances:
            log.log(
                log.Level.WARN,
                f"{self.merge.null_balances} stock items had a null product_balance; loaded as 0",
            )
        return types.Summary(**counts)

    def next_batch(self, max_rows: int) -> list[types.Row]:
        return [types.Row(id=i, data=d, stock=s) for i, d, s in self.merge.next_batch(max_rows)]
