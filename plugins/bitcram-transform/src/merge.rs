//! The transform itself, in plain Rust: Bitcram's price list left-joined with
//! the warehouse's stock, one row per price-list item.
//!
//! Rules (the original job's semantics, made strict where it was silent):
//! - `id` is the item's `product_id` as text; numbers and numeric strings are
//!   accepted and written in canonical form (`"0042"` and `42` are both `42`);
//! - `data` is the price-list item without `product_id`, every other field kept
//!   as it came (unknown fields and nulls included, numbers untouched), compact;
//! - `stock` is `product_balance` from the stock item of the same product,
//!   truncated toward zero, 0 when the product has no stock item (or a null
//!   balance, which the original job also loaded as 0); stock items name their
//!   product by `product_id` or by `product.id`;
//! - stock items for products absent from the price list are dropped and counted;
//! - a product id twice in the price list or twice in the stock is an error;
//! - a page that is not JSON, has no `items` array, or reports a `count` or
//!   `total` larger than the items it carries is an error, and so is an item
//!   without a usable product id.
//!
//! Input comes either page by page ([`Transform::push`], contract 0.1.0) or
//! item by item ([`Transform::push_items`] and [`Transform::end_source`],
//! contract 0.2.0, which the component exports); the rules are the same.
//!
//! Memory: item by item, a price-list item becomes its row at once (every
//! stock item came first) and only the rows not yet taken are held. Page by
//! page, a price-list page is kept as the bytes it came in, with the range
//! and id of each item; rows are built only when asked for, a batch at a
//! time, and a page's bytes are freed as soon as its last row has been
//! handed out. Either way the stock is held until the end as `(id, balance)`
//! pairs, 16 bytes a product, sorted by id once complete and searched by
//! bisection, with one bit per pair marking the products the price list
//! named; only the price-list ids without stock are kept in a hash set.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;

use crate::data::{canonical_id, item_data, parse_balance, snippet};
use crate::stock::StockTable;

use serde::Deserialize;
use serde::de::{self, IgnoredAny};
use serde_json::Value;
use serde_json::value::RawValue;

/// Which API body a page came from, in the order pages must be pushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    Checkout,
    Stock,
    PriceList,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Checkout => "checkout",
            Source::Stock => "stock",
            Source::PriceList => "price list",
        })
    }
}

/// One output row; the host adds `updated_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub id: String,
    pub data: String,
    pub stock: i64,
}

/// Where a problem is and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    pub source: Source,
    pub page: u32,
    pub item: Option<u32>,
    pub product_id: Option<String>,
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} page {}", self.source, self.page)?;
        if let Some(item) = self.item {
            write!(f, ", item {item}")?;
        }
        if let Some(id) = &self.product_id {
            write!(f, " (product {id})")?;
        }
        if let Some(field) = &self.field {
            write!(f, ", field `{field}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Why a transform failed; mirrors the WIT `transform-error` variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransformError {
    MalformedBody(InputError),
    InvalidItem(InputError),
    DuplicateKey { source: Source, product_id: String },
    Protocol(String),
}

impl fmt::Display for TransformError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransformError::MalformedBody(e) => write!(f, "malformed body: {e}"),
            TransformError::InvalidItem(e) => write!(f, "invalid item: {e}"),
            TransformError::DuplicateKey { source, product_id } => {
                write!(
                    f,
                    "product {product_id} occurs more than once in the {source}"
                )
            }
            TransformError::Protocol(m) => write!(f, "protocol error: {m}"),
        }
    }
}

impl std::error::Error for TransformError {}

/// The run's counts, returned by [`Transform::finish`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub price_list_items: u64,
    pub stock_items: u64,
    pub dropped_stock_items: u64,
    pub rows: u64,
    /// Stock items whose `product_balance` was null (loaded as 0).
    pub null_balances: u64,
}

/// One price-list page: its bytes, and each item's byte range and product id.
struct PriceListPage {
    text: String,
    items: Vec<(Range<usize>, u64)>,
    next: usize,
}

/// One run's transform. Push pages in [`Source`] order, then [`finish`], then
/// drain [`next_batch`] until it returns no rows.
///
/// [`finish`]: Transform::finish
/// [`next_batch`]: Transform::next_batch
#[derive(Default)]
pub struct Transform {
    pages_seen: HashMap<Source, u32>,
    last_source: Option<Source>,
    finished: bool,
    /// The stock's balances, and the price list's ids, to refuse duplicates
    /// and count stock items that match no product.
    stock: StockTable,
    pending: std::collections::VecDeque<PriceListPage>,
    /// Item by item: the sources ended so far (a prefix of [`SOURCES`]), the
    /// items pushed of the one open (only it takes items), and the rows made
    /// and not yet taken.
    ended: usize,
    open_items: u32,
    ready: std::collections::VecDeque<Row>,
    /// Whether input came as pages or as items: one run takes one kind.
    mode: Option<Mode>,
    summary: Summary,
}

/// The sources in the order they are pushed and ended.
const SOURCES: [Source; 3] = [Source::Checkout, Source::Stock, Source::PriceList];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Pages,
    Items,
}

impl Transform {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one page. The page is consumed: stock pages are reduced to their
    /// balances, price-list pages kept as bytes until their rows are taken.
    /// The first price-list page ends the stock, refusing a product found
    /// twice in it.
    pub fn push(&mut self, source: Source, page: Vec<u8>) -> Result<(), TransformError> {
        if self.finished {
            return Err(TransformError::Protocol(format!(
                "a {source} page was pushed after finish"
            )));
        }
        self.set_mode(Mode::Pages)?;
        if let Some(last) = self.last_source
            && source < last
        {
            return Err(TransformError::Protocol(format!(
                "a {source} page was pushed after a {last} page; push checkout, then stock, then price list"
            )));
        }
        self.last_source = Some(source);
        let counter = self.pages_seen.entry(source).or_insert(0);
        let page_no = *counter;
        *counter += 1;
        let at = Locator {
            source,
            page: page_no,
        };
        match source {
            Source::Checkout => serde_json::from_slice::<IgnoredAny>(&page)
                .map(drop)
                .map_err(|e| at.malformed(format!("not valid JSON: {e}"))),
            Source::Stock => self.push_stock(at, &utf8(at, page)?),
            Source::PriceList => {
                self.seal_stock()?;
                self.push_price_list(at, utf8(at, page)?)
            }
        }
    }

    fn push_stock(&mut self, at: Locator, page: &str) -> Result<(), TransformError> {
        let items = parse_envelope(at, page)?;
        for (index, raw) in items.iter().enumerate() {
            self.stock_item(at.item(index), raw.get())?;
        }
        Ok(())
    }

    /// Adds one stock item's balance.
    fn stock_item(&mut self, item: ItemLocator, raw: &str) -> Result<(), TransformError> {
        item.expect_object(raw)?;
        let stock: StockItem = serde_json::from_str(raw)
            .map_err(|e| item.invalid(None, None, format!("not a stock item: {e}")))?;
        let id = stock.product_id(&item)?;
        let balance = match &stock.product_balance {
            None => {
                return Err(item.invalid(Some(id), Some("product_balance"), "missing".to_owned()));
            }
            Some(Value::Null) => {
                self.summary.null_balances += 1;
                0
            }
            Some(value) => parse_balance(value)
                .map_err(|message| item.invalid(Some(id), Some("product_balance"), message))?,
        };
        self.stock.push(id, balance);
        self.summary.stock_items += 1;
        Ok(())
    }

    /// Ends the stock, refusing a product found twice in it: item by item
    /// at its `end_source`; page by page at the first price-list page or,
    /// when none came, at `finish`. Once it has succeeded, does nothing.
    fn seal_stock(&mut self) -> Result<(), TransformError> {
        self.stock
            .seal()
            .map_err(|id| TransformError::DuplicateKey {
                source: Source::Stock,
                product_id: id.to_string(),
            })
    }

    fn push_price_list(&mut self, at: Locator, page: String) -> Result<(), TransformError> {
        let items = parse_envelope(at, &page)?;
        let base = page.as_ptr() as usize;
        let mut indexed = Vec::with_capacity(items.len());
        for (index, raw) in items.iter().enumerate() {
            let id = self.price_list_id(at.item(index), raw.get())?;
            // `raw` borrows from `page`; keep its place so the page can be
            // stored without self-references.
            let start = raw.get().as_ptr() as usize - base;
            indexed.push((start..start + raw.get().len(), id));
        }
        self.summary.price_list_items += indexed.len() as u64;
        drop(items);
        if !indexed.is_empty() {
            self.pending.push_back(PriceListPage {
                text: page,
                items: indexed,
                next: 0,
            });
        }
        Ok(())
    }

    /// Reads one price-list item's product id, refusing one seen before.
    fn price_list_id(&mut self, item: ItemLocator, raw: &str) -> Result<u64, TransformError> {
        item.expect_object(raw)?;
        let head: PriceListItemId = serde_json::from_str(raw)
            .map_err(|e| item.invalid(None, None, format!("not a price-list item object: {e}")))?;
        let id = match head.product_id {
            Some(value) => canonical_id(&value)
                .map_err(|message| item.invalid(None, Some("product_id"), message))?,
            None => return Err(item.invalid(None, Some("product_id"), "missing".to_owned())),
        };
        if !self.stock.claim(id) {
            return Err(TransformError::DuplicateKey {
                source: Source::PriceList,
                product_id: id.to_string(),
            });
        }
        Ok(id)
    }

    /// Takes the next items of `source`, each one JSON value as text (the
    /// item-by-item contract). Stock items are reduced to their balances;
    /// price-list items become rows at once, since every stock item came
    /// before them; checkout items are not needed.
    pub fn push_items(&mut self, source: Source, items: Vec<String>) -> Result<(), TransformError> {
        self.expect_open(source, "items were pushed")?;
        let first = self.open_items as usize;
        self.open_items = self
            .open_items
            .saturating_add(u32::try_from(items.len()).unwrap_or(u32::MAX));
        let at = Locator { source, page: 0 };
        for (n, raw) in items.into_iter().enumerate() {
            let item = at.item(first + n);
            match source {
                Source::Checkout => {}
                Source::Stock => self.stock_item(item, &raw)?,
                Source::PriceList => {
                    let id = self.price_list_id(item, &raw)?;
                    self.summary.price_list_items += 1;
                    self.ready.push_back(Row {
                        id: id.to_string(),
                        data: item_data(&raw),
                        stock: self.stock.balance(id),
                    });
                }
            }
        }
        Ok(())
    }

    /// Says that every item of `source` has been pushed. Ending the stock
    /// refuses a product found twice in it.
    pub fn end_source(&mut self, source: Source) -> Result<(), TransformError> {
        self.expect_open(source, "was ended")?;
        if source == Source::Stock {
            self.seal_stock()?;
        }
        self.ended += 1;
        self.open_items = 0;
        Ok(())
    }

    /// Item by item, `source` must be the first source not yet ended.
    fn expect_open(&mut self, source: Source, what: &str) -> Result<(), TransformError> {
        if self.finished {
            return Err(TransformError::Protocol(format!(
                "{source}: {what} after finish"
            )));
        }
        self.set_mode(Mode::Items)?;
        match SOURCES.get(self.ended) {
            Some(open) if *open == source => Ok(()),
            Some(open) => Err(TransformError::Protocol(format!(
                "{source}: {what} while {open} was not yet ended; push and end checkout, then stock, then price list"
            ))),
            None => Err(TransformError::Protocol(format!(
                "{source}: {what} after every source had ended"
            ))),
        }
    }

    fn set_mode(&mut self, mode: Mode) -> Result<(), TransformError> {
        match self.mode {
            Some(current) if current != mode => Err(TransformError::Protocol(
                "pages and items were mixed in one transform".to_owned(),
            )),
            _ => {
                self.mode = Some(mode);
                Ok(())
            }
        }
    }

    /// Ends the input and returns the run's counts.
    pub fn finish(&mut self) -> Result<Summary, TransformError> {
        if self.finished {
            return Err(TransformError::Protocol(
                "finish was called twice".to_owned(),
            ));
        }
        if self.mode == Some(Mode::Items) && self.ended < SOURCES.len() {
            return Err(TransformError::Protocol(format!(
                "finish was called before {} was ended",
                SOURCES[self.ended]
            )));
        }
        self.seal_stock()?;
        self.finished = true;
        self.summary.rows = self.summary.price_list_items;
        self.summary.dropped_stock_items = self.stock.unclaimed();
        Ok(self.summary)
    }

    /// Up to `max_rows` rows, in price-list order; empty when none is ready.
    pub fn next_batch(&mut self, max_rows: usize) -> Result<Vec<Row>, TransformError> {
        if !self.finished
            && self.mode == Some(Mode::Pages)
            && self.last_source != Some(Source::PriceList)
        {
            // Rows depend on every stock page: none is ready before the price list.
            return Ok(Vec::new());
        }
        let mut rows = Vec::with_capacity(max_rows.min(4096));
        let take = max_rows.min(self.ready.len());
        rows.extend(self.ready.drain(..take));
        while rows.len() < max_rows {
            let Some(page) = self.pending.front_mut() else {
                break;
            };
            let take = (max_rows - rows.len()).min(page.items.len() - page.next);
            for (range, id) in &page.items[page.next..page.next + take] {
                let data = item_data(&page.text[range.clone()]);
                let stock = self.stock.balance(*id);
                rows.push(Row {
                    id: id.to_string(),
                    data,
                    stock,
                });
            }
            page.next += take;
            if page.next == page.items.len() {
                self.pending.pop_front();
            }
        }
        Ok(rows)
    }
}

#[derive(Clone, Copy)]
struct Locator {
    source: Source,
    page: u32,
}

#[derive(Clone, Copy)]
struct ItemLocator {
    at: Locator,
    index: u32,
}

impl Locator {
    fn item(self, index: usize) -> ItemLocator {
        ItemLocator {
            at: self,
            index: u32::try_from(index).unwrap_or(u32::MAX),
        }
    }

    fn malformed(self, message: String) -> TransformError {
        TransformError::MalformedBody(InputError {
            source: self.source,
            page: self.page,
            item: None,
            product_id: None,
            field: None,
            message,
        })
    }
}

impl ItemLocator {
    /// Serde would also read a struct from a JSON array: items must be objects.
    fn expect_object(self, raw: &str) -> Result<(), TransformError> {
        if raw.starts_with('{') {
            Ok(())
        } else {
            Err(self.invalid(None, None, format!("not a JSON object: {}", snippet(raw))))
        }
    }

    fn invalid(
        self,
        product_id: Option<u64>,
        field: Option<&str>,
        message: String,
    ) -> TransformError {
        TransformError::InvalidItem(InputError {
            source: self.at.source,
            page: self.at.page,
            item: Some(self.index),
            product_id: product_id.map(|id| id.to_string()),
            field: field.map(str::to_owned),
            message,
        })
    }
}

/// The list envelope `{"items": [...]}`; `count`/`total`, when a number or
/// a string holding one (as the host reads them, so that both refuse the
/// same pages), must not exceed the items carried (a larger one means a
/// cut list).
/// Guess: Bitcram has never been seen sending either field; checking them
/// costs nothing and refuses a paginated answer instead of loading a part.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    items: Option<Vec<&'a RawValue>>,
    count: Option<Value>,
    total: Option<Value>,
}

/// The page as text; JSON is UTF-8.
fn utf8(at: Locator, page: Vec<u8>) -> Result<String, TransformError> {
    String::from_utf8(page)
        .map_err(|e| at.malformed(format!("not valid JSON: not UTF-8 text ({e})")))
}

fn parse_envelope(at: Locator, page: &str) -> Result<Vec<&RawValue>, TransformError> {
    let envelope: Envelope<'_> = serde_json::from_str(page).map_err(|e| {
        if e.classify() == serde_json::error::Category::Data {
            at.malformed(format!("expected an object with an `items` array: {e}"))
        } else {
            at.malformed(format!("not valid JSON: {e}"))
        }
    })?;
    let items = envelope
        .items
        .ok_or_else(|| at.malformed("no `items` array".to_owned()))?;
    for (name, value) in [("count", &envelope.count), ("total", &envelope.total)] {
        if let Some(reported) = value.as_ref().and_then(reported_len)
            && reported > items.len() as f64
        {
            return Err(at.malformed(format!(
                "`{name}` says {reported} items but the page carries {}: the list is incomplete",
                items.len()
            )));
        }
    }
    Ok(items)
}

/// A `count` or `total`: a number, or a string holding one.
fn reported_len(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[derive(Deserialize)]
struct PriceListItemId {
    product_id: Option<Value>,
}

#[derive(Deserialize)]
struct StockItem {
    product_id: Option<Value>,
    product: Option<ProductRef>,
    /// `None` when the field is absent, `Some(Value::Null)` when it is null.
    #[serde(default, deserialize_with = "present")]
    product_balance: Option<Value>,
}

/// The nested `product` of older stock responses; only its id matters.
#[derive(Deserialize)]
struct ProductRef {
    id: Option<Value>,
}

fn present<'de, D: de::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

impl StockItem {
    fn product_id(&self, item: &ItemLocator) -> Result<u64, TransformError> {
        let flat = match &self.product_id {
            Some(Value::Null) | None => None,
            Some(v) => {
                Some(canonical_id(v).map_err(|m| item.invalid(None, Some("product_id"), m))?)
            }
        };
        let nested = match self.product.as_ref().and_then(|p| p.id.as_ref()) {
            Some(Value::Null) | None => None,
            Some(v) => {
                Some(canonical_id(v).map_err(|m| item.invalid(None, Some("product.id"), m))?)
            }
        };
        match (flat, nested) {
            (Some(a), Some(b)) if a != b => Err(item.invalid(
                Some(a),
                Some("product.id"),
                format!("product_id {a} and product.id {b} disagree"),
            )),
            (Some(id), _) | (None, Some(id)) => Ok(id),
            (None, None) => Err(item.invalid(
                None,
                Some("product_id"),
                "missing (neither `product_id` nor `product.id`)".to_owned(),
            )),
        }
    }
}
