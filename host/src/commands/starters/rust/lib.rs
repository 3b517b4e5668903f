//! {{name}}: a bitcram-sync transform component.
//!
//! It makes one row per price-list item, in price-list order: `id` is the
//! item's `product_id` as text, `data` the item without `product_id`, and
//! `stock` the `product_balance` of the stock item with the same
//! `product_id` (truncated toward zero; 0 when there is none). Change the
//! rules in `Transform::push`; the golden cases in `cases/` say what the
//! rows must be.

use std::cell::RefCell;
use std::collections::HashMap;

use serde_json::{Map, Value};

wit_bindgen::generate!({ path: "wit", world: "transform" });

use bitcram::transform::log::{Level, log};
use bitcram::transform::types::{InputError, Row, RunContext, Source, Summary, TransformError};
use exports::bitcram::transform::transformer::{Guest, GuestTransform, PluginInfo};

struct Component;

impl Guest for Component {
    type Transform = Transform;

    fn info() -> PluginInfo {
        PluginInfo {
            name: "{{name}}".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}

export!(Component);

/// One run's transform: the host pushes the checkout, stock and price-list
/// pages, calls `finish`, then takes the rows with `next_batch`.
struct Transform(RefCell<State>);

#[derive(Default)]
struct State {
    /// Pages pushed so far, per source: checkout, stock, price list.
    pages: [u32; 3],
    stock: HashMap<String, i64>,
    stock_items: u64,
    /// Price-list items as (id, data), in order.
    items: Vec<(String, String)>,
    next: usize,
    finished: bool,
}

impl GuestTransform for Transform {
    fn new(context: RunContext) -> Self {
        log(
            Level::Debug,
            &format!("transform for checkout {}", context.checkout_number),
        );
        Self(RefCell::new(State::default()))
    }

    fn push(&self, source: Source, page: Vec<u8>) -> Result<(), TransformError> {
        let mut state = self.0.borrow_mut();
        let number = state.pages[source as usize];
        state.pages[source as usize] += 1;
        let where_ = |item: Option<u32>, field: Option<&str>, message: String| InputError {
            source,
            page: number,
            item,
            product_id: None,
            field: field.map(str::to_owned),
            message,
        };
        let body: Value = serde_json::from_slice(&page).map_err(|e| {
            TransformError::MalformedBody(where_(None, None, format!("not valid JSON: {e}")))
        })?;
        if source == Source::Checkout {
            return Ok(());
        }
        let Some(Value::Array(items)) = body.get("items") else {
            return Err(TransformError::MalformedBody(where_(
                None,
                None,
                "no `items` array".into(),
            )));
        };
        for (index, item) in items.iter().enumerate() {
            let Value::Object(item) = item else {
                return Err(TransformError::InvalidItem(where_(
                    Some(index as u32),
                    None,
                    "not a JSON object".into(),
                )));
            };
            let id = match item.get("product_id") {
                Some(Value::Number(n)) => n.to_string(),
                Some(Value::String(s)) => s.clone(),
                _ => {
                    return Err(TransformError::InvalidItem(where_(
                        Some(index as u32),
                        Some("product_id"),
                        "missing, or not a number or a string".into(),
                    )));
                }
            };
            if source == Source::Stock {
                let balance = item
                    .get("product_balance")
                    .and_then(Value::as_f64)
                    .unwrap_or(0.0);
                state.stock.insert(id, balance.trunc() as i64);
                state.stock_items += 1;
            } else {
                let data: Map<String, Value> = item
                    .iter()
                    .filter(|(k, _)| *k != "product_id")
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                state.items.push((id, Value::Object(data).to_string()));
            }
        }
        Ok(())
    }

    fn finish(&self) -> Result<Summary, TransformError> {
        let mut state = self.0.borrow_mut();
        if state.finished {
            return Err(TransformError::Protocol("finish was called twice".into()));
        }
        state.finished = true;
        let listed: std::collections::HashSet<&str> =
            state.items.iter().map(|(id, _)| id.as_str()).collect();
        let dropped = state
            .stock
            .keys()
            .filter(|id| !listed.contains(id.as_str()))
            .count();
        Ok(Summary {
            price_list_items: state.items.len() as u64,
            stock_items: state.stock_items,
            dropped_stock_items: dropped as u64,
            rows: state.items.len() as u64,
        })
    }

    fn next_batch(&self, max_rows: u32) -> Result<Vec<Row>, TransformError> {
        let mut state = self.0.borrow_mut();
        if !state.finished {
            return Ok(Vec::new());
        }
        let start = state.next;
        let end = (start + max_rows as usize).min(state.items.len());
        state.next = end;
        let rows = state.items[start..end]
            .iter()
            .map(|(id, data)| Row {
                id: id.clone(),
                data: data.clone(),
                stock: state.stock.get(id).copied().unwrap_or(0),
            })
            .collect();
        Ok(rows)
    }
}
