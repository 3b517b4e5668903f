//! What a transform tells the host, in the host's own types: its errors and
//! its summary. Each contract version's bindings convert into these at the
//! edge (see `bindings`), so that nothing above the plugin runtime depends on
//! the version a component was built against.

use crate::model::{Source, SourceCounts};

/// Where in the input a plugin found a problem, and what it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    /// The body the problem is in.
    pub source: Source,
    /// The page of that body, counted from 0 in the order pushed, from a
    /// plugin that takes pages (contract 0.1.0).
    pub page: Option<u32>,
    /// The item's position: in the page's `items` array (0.1.0), or among
    /// the source's items (0.2.0), when the problem is in one item.
    pub item: Option<u32>,
    /// The item's product id, when it could be read.
    pub product_id: Option<String>,
    /// The field that was wrong, when one was.
    pub field: Option<String>,
    /// What was wrong, in the plugin's words.
    pub message: String,
}

/// A product id that occurs more than once in one source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateKey {
    pub source: Source,
    pub product_id: String,
}

/// Why a plugin said its transform failed: the contract's `transform-error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestError {
    /// A body is not JSON, is cut short, or is not the expected envelope.
    MalformedBody(InputError),
    /// One item cannot be used.
    InvalidItem(InputError),
    /// The same product id twice in one source.
    DuplicateKey(DuplicateKey),
    /// The host broke the call protocol, in the plugin's view.
    Protocol(String),
    /// Anything else.
    Other(String),
}

impl GuestError {
    /// The case's name in the contract (`malformed-body`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            GuestError::MalformedBody(_) => "malformed-body",
            GuestError::InvalidItem(_) => "invalid-item",
            GuestError::DuplicateKey(_) => "duplicate-key",
            GuestError::Protocol(_) => "protocol",
            GuestError::Other(_) => "other",
        }
    }
}

/// The counts a transform reports when all input has been pushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    /// Items read from the price list.
    pub price_list_items: u64,
    /// Items read from the stock.
    pub stock_items: u64,
    /// Stock items naming a product that is not in the price list.
    pub dropped_stock_items: u64,
    /// Rows the transform produces in all.
    pub rows: u64,
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

/// One line describing a guest error, naming source, page, item, product and
/// field where the plugin gave them.
pub fn describe_guest_error(error: &GuestError) -> String {
    fn input(kind: &str, e: &InputError) -> String {
        let mut s = format!("{kind} in the {} body", e.source.name());
        if let Some(page) = e.page {
            s += &format!(", page {page}");
        }
        if let Some(item) = e.item {
            s += &format!(", item {item}");
        }
        if let Some(id) = &e.product_id {
            s += &format!(", product {id}");
        }
        if let Some(field) = &e.field {
            s += &format!(", field `{field}`");
        }
        s + ": " + &e.message
    }
    match error {
        GuestError::MalformedBody(e) => input("malformed body", e),
        GuestError::InvalidItem(e) => input("invalid item", e),
        GuestError::DuplicateKey(d) => format!(
            "duplicate key: product {} occurs more than once in the {} body",
            d.product_id,
            d.source.name()
        ),
        GuestError::Protocol(m) => format!("protocol error: {m}"),
        GuestError::Other(m) => m.clone(),
    }
}
