//! Host bindings generated from `wit/`, and the conversions between their
//! types and the app's own at the edge (moves, no copies).

wasmtime::component::bindgen!({
    world: "transform",
    path: "../wit/0.1.0",
    imports: { default: async | trappable },
    exports: { default: async },
});

use self::bitcram::transform::types::{
    Row as GuestRow, RunContext as GuestRunContext, Source as GuestSource, Summary,
};
use crate::model::{Row, RunContext, Source, SourceCounts};

impl From<Source> for GuestSource {
    fn from(source: Source) -> Self {
        match source {
            Source::Checkout => GuestSource::Checkout,
            Source::Stock => GuestSource::Stock,
            Source::PriceList => GuestSource::PriceList,
        }
    }
}

impl From<GuestSource> for Source {
    fn from(source: GuestSource) -> Self {
        match source {
            GuestSource::Checkout => Source::Checkout,
            GuestSource::Stock => Source::Stock,
            GuestSource::PriceList => Source::PriceList,
        }
    }
}

impl From<&RunContext> for GuestRunContext {
    fn from(context: &RunContext) -> Self {
        GuestRunContext {
            checkout_number: context.checkout_number.clone(),
            checkout_id: context.checkout_id,
            warehouse_id: context.warehouse_id,
            synced_at: context.synced_at.clone(),
        }
    }
}

impl From<&Summary> for SourceCounts {
    fn from(summary: &Summary) -> Self {
        SourceCounts {
            price_list_items: summary.price_list_items,
            stock_items: summary.stock_items,
            dropped_stock_items: summary.dropped_stock_items,
        }
    }
}

impl From<GuestRow> for Row {
    fn from(row: GuestRow) -> Self {
        Row {
            id: row.id,
            data: row.data,
            stock: row.stock,
        }
    }
}
