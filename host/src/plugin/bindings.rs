//! Host bindings generated from each contract version's WIT (`wit/0.1.0/`,
//! `wit/0.2.0/`), and the conversions between their types and the host's
//! own at the edge (moves, no copies): nothing outside the plugin runtime
//! sees a generated type.

/// The conversions every version shares: its `source`, `run-context`, `row`,
/// `summary` and `duplicate-key` have the same shape.
macro_rules! shared_conversions {
    () => {
        use self::bitcram::transform::types as wit;
        use super::super::contract;
        use crate::model::{Row, RunContext, Source};

        impl From<Source> for wit::Source {
            fn from(source: Source) -> Self {
                match source {
                    Source::Checkout => wit::Source::Checkout,
                    Source::Stock => wit::Source::Stock,
                    Source::PriceList => wit::Source::PriceList,
                }
            }
        }

        impl From<wit::Source> for Source {
            fn from(source: wit::Source) -> Self {
                match source {
                    wit::Source::Checkout => Source::Checkout,
                    wit::Source::Stock => Source::Stock,
                    wit::Source::PriceList => Source::PriceList,
                }
            }
        }

        impl From<&RunContext> for wit::RunContext {
            fn from(context: &RunContext) -> Self {
                wit::RunContext {
                    checkout_number: context.checkout_number.clone(),
                    checkout_id: context.checkout_id,
                    warehouse_id: context.warehouse_id,
                    synced_at: context.synced_at.clone(),
                }
            }
        }

        impl From<wit::Summary> for contract::Summary {
            fn from(summary: wit::Summary) -> Self {
                contract::Summary {
                    price_list_items: summary.price_list_items,
                    stock_items: summary.stock_items,
                    dropped_stock_items: summary.dropped_stock_items,
                    rows: summary.rows,
                }
            }
        }

        impl From<wit::DuplicateKey> for contract::DuplicateKey {
            fn from(d: wit::DuplicateKey) -> Self {
                contract::DuplicateKey {
                    source: d.source.into(),
                    product_id: d.product_id,
                }
            }
        }

        impl From<wit::Row> for Row {
            fn from(row: wit::Row) -> Self {
                Row {
                    id: row.id,
                    data: row.data,
                    stock: row.stock,
                }
            }
        }
    };
}

/// `bitcram:transform@0.1.0`: whole bodies, one `push` per page.
pub(super) mod v0_1 {
    wasmtime::component::bindgen!({
        world: "transform",
        path: "../wit/0.1.0",
        imports: { default: async | trappable },
        exports: { default: async },
    });

    shared_conversions!();

    impl From<wit::InputError> for contract::InputError {
        fn from(e: wit::InputError) -> Self {
            contract::InputError {
                source: e.source.into(),
                page: Some(e.page),
                item: e.item,
                product_id: e.product_id,
                field: e.field,
                message: e.message,
            }
        }
    }

    impl From<wit::TransformError> for contract::GuestError {
        fn from(error: wit::TransformError) -> Self {
            use contract::GuestError;
            match error {
                wit::TransformError::MalformedBody(e) => GuestError::MalformedBody(e.into()),
                wit::TransformError::InvalidItem(e) => GuestError::InvalidItem(e.into()),
                wit::TransformError::DuplicateKey(d) => GuestError::DuplicateKey(d.into()),
                wit::TransformError::Protocol(m) => GuestError::Protocol(m),
                wit::TransformError::Other(m) => GuestError::Other(m),
            }
        }
    }
}

/// `bitcram:transform@0.2.0`: item by item, each one JSON text.
pub(super) mod v0_2 {
    wasmtime::component::bindgen!({
        world: "transform",
        path: "../wit/0.2.0",
        imports: { default: async | trappable },
        exports: { default: async },
    });

    shared_conversions!();

    impl From<wit::ItemError> for contract::InputError {
        fn from(e: wit::ItemError) -> Self {
            contract::InputError {
                source: e.source.into(),
                page: None,
                item: Some(e.item),
                product_id: e.product_id,
                field: e.field,
                message: e.message,
            }
        }
    }

    impl From<wit::TransformError> for contract::GuestError {
        fn from(error: wit::TransformError) -> Self {
            use contract::GuestError;
            match error {
                wit::TransformError::InvalidItem(e) => GuestError::InvalidItem(e.into()),
                wit::TransformError::DuplicateKey(d) => GuestError::DuplicateKey(d.into()),
                wit::TransformError::Protocol(m) => GuestError::Protocol(m),
                wit::TransformError::Other(m) => GuestError::Other(m),
            }
        }
    }
}
