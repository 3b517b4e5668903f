//! `wit-bindgen` glue: the WIT `transformer` interface of
//! `bitcram:transform@0.2.0` (item by item) over [`crate::Transform`].

use std::cell::RefCell;

wit_bindgen::generate!({
    path: "../../wit/0.2.0",
    world: "transform",
});

use bitcram::transform::log::{Level, log};
use bitcram::transform::types as wit;
use exports::bitcram::transform::transformer::{Guest, GuestTransform, PluginInfo};

struct Component;

impl Guest for Component {
    type Transform = TransformResource;

    fn info() -> PluginInfo {
        PluginInfo {
            name: crate::NAME.to_owned(),
            version: crate::VERSION.to_owned(),
        }
    }
}

struct TransformResource(RefCell<crate::Transform>);

impl GuestTransform for TransformResource {
    fn new(context: wit::RunContext) -> Self {
        log(
            Level::Debug,
            &format!(
                "transform for checkout {} (id {}), warehouse {}, synced at {}",
                context.checkout_number,
                context.checkout_id,
                context.warehouse_id,
                context.synced_at
            ),
        );
        Self(RefCell::new(crate::Transform::new()))
    }

    fn push_items(
        &self,
        source: wit::Source,
        items: Vec<String>,
    ) -> Result<(), wit::TransformError> {
        self.0
            .borrow_mut()
            .push_items(source.into(), items)
            .map_err(Into::into)
    }

    fn end_source(&self, source: wit::Source) -> Result<(), wit::TransformError> {
        self.0
            .borrow_mut()
            .end_source(source.into())
            .map_err(Into::into)
    }

    fn finish(&self) -> Result<wit::Summary, wit::TransformError> {
        let summary = self.0.borrow_mut().finish()?;
        if summary.null_balances > 0 {
            log(
                Level::Warn,
                &format!(
                    "{} stock items had a null product_balance; loaded as 0",
                    summary.null_balances
                ),
            );
        }
        Ok(wit::Summary {
            price_list_items: summary.price_list_items,
            stock_items: summary.stock_items,
            dropped_stock_items: summary.dropped_stock_items,
            rows: summary.rows,
        })
    }

    fn next_batch(&self, max_rows: u32) -> Result<Vec<wit::Row>, wit::TransformError> {
        let rows = self.0.borrow_mut().next_batch(max_rows as usize)?;
        Ok(rows
            .into_iter()
            .map(|row| wit::Row {
                id: row.id,
                data: row.data,
                stock: row.stock,
            })
            .collect())
    }
}

impl From<wit::Source> for crate::Source {
    fn from(source: wit::Source) -> Self {
        match source {
            wit::Source::Checkout => crate::Source::Checkout,
            wit::Source::Stock => crate::Source::Stock,
            wit::Source::PriceList => crate::Source::PriceList,
        }
    }
}

impl From<crate::Source> for wit::Source {
    fn from(source: crate::Source) -> Self {
        match source {
            crate::Source::Checkout => wit::Source::Checkout,
            crate::Source::Stock => wit::Source::Stock,
            crate::Source::PriceList => wit::Source::PriceList,
        }
    }
}

impl From<crate::InputError> for wit::ItemError {
    fn from(e: crate::InputError) -> Self {
        wit::ItemError {
            source: e.source.into(),
            item: e.item.unwrap_or(0),
            product_id: e.product_id,
            field: e.field,
            message: e.message,
        }
    }
}

impl From<crate::TransformError> for wit::TransformError {
    fn from(e: crate::TransformError) -> Self {
        match e {
            // Item by item, the host checks every envelope: a malformed body
            // never reaches this transform.
            crate::TransformError::MalformedBody(e) => wit::TransformError::Other(e.to_string()),
            crate::TransformError::InvalidItem(e) => wit::TransformError::InvalidItem(e.into()),
            crate::TransformError::DuplicateKey { source, product_id } => {
                wit::TransformError::DuplicateKey(wit::DuplicateKey {
                    source: source.into(),
                    product_id,
                })
            }
            crate::TransformError::Protocol(m) => wit::TransformError::Protocol(m),
        }
    }
}

export!(Component);
