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
//! Memory: a price-list page is kept as the bytes it came in, with the range
//! and id of each item; rows are built only when asked for, a batch at a time,
//! and a page's bytes are freed as soon as its last row has been handed out.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::ops::Range;

use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, Visitor};
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
    /// Product id → balance, from the stock pages.
    stock: HashMap<u64, i64>,
    /// Every product id of the price list, to refuse duplicates and count
    /// stock items that match no product.
    price_list_ids: HashSet<u64>,
    pending: std::collections::VecDeque<PriceListPage>,
    summary: Summary,
}

impl Transform {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one page. The page is consumed: stock pages are reduced to a map
    /// of balances, price-list pages kept as bytes until their rows are taken.
    pub fn push(&mut self, source: Source, page: Vec<u8>) -> Result<(), TransformError> {
        if self.finished {
            return Err(TransformError::Protocol(format!(
                "a {source} page was pushed after finish"
            )));
        }
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
            Source::PriceList => self.push_price_list(at, utf8(at, page)?),
        }
    }

    fn push_stock(&mut self, at: Locator, page: &str) -> Result<(), TransformError> {
        let items = parse_envelope(at, page)?;
        for (index, raw) in items.iter().enumerate() {
            let item = at.item(index);
            item.expect_object(raw)?;
            let stock: StockItem = serde_json::from_str(raw.get())
                .map_err(|e| item.invalid(None, None, format!("not a stock item: {e}")))?;
            let id = stock.product_id(&item)?;
            let balance = match &stock.product_balance {
                None => {
                    return Err(item.invalid(
                        Some(id),
                        Some("product_balance"),
                        "missing".to_owned(),
                    ));
                }
                Some(Value::Null) => {
                    self.summary.null_balances += 1;
                    0
                }
                Some(value) => parse_balance(value)
                    .map_err(|message| item.invalid(Some(id), Some("product_balance"), message))?,
            };
            if self.stock.insert(id, balance).is_some() {
                return Err(TransformError::DuplicateKey {
                    source: Source::Stock,
                    product_id: id.to_string(),
                });
            }
            self.summary.stock_items += 1;
        }
        Ok(())
    }

    fn push_price_list(&mut self, at: Locator, page: String) -> Result<(), TransformError> {
        let items = parse_envelope(at, &page)?;
        let base = page.as_ptr() as usize;
        let mut indexed = Vec::with_capacity(items.len());
        for (index, raw) in items.iter().enumerate() {
            let item = at.item(index);
            item.expect_object(raw)?;
            let head: PriceListItemId = serde_json::from_str(raw.get()).map_err(|e| {
                item.invalid(None, None, format!("not a price-list item object: {e}"))
            })?;
            let id = match head.product_id {
                Some(value) => canonical_id(&value)
                    .map_err(|message| item.invalid(None, Some("product_id"), message))?,
                None => return Err(item.invalid(None, Some("product_id"), "missing".to_owned())),
            };
            if !self.price_list_ids.insert(id) {
                return Err(TransformError::DuplicateKey {
                    source: Source::PriceList,
                    product_id: id.to_string(),
                });
            }
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

    /// Ends the input and returns the run's counts.
    pub fn finish(&mut self) -> Result<Summary, TransformError> {
        if self.finished {
            return Err(TransformError::Protocol(
                "finish was called twice".to_owned(),
            ));
        }
        self.finished = true;
        self.summary.rows = self.summary.price_list_items;
        self.summary.dropped_stock_items = self
            .stock
            .keys()
            .filter(|id| !self.price_list_ids.contains(*id))
            .count() as u64;
        Ok(self.summary)
    }

    /// Up to `max_rows` rows, in price-list order; empty when none is ready.
    pub fn next_batch(&mut self, max_rows: usize) -> Result<Vec<Row>, TransformError> {
        if !self.finished && self.last_source != Some(Source::PriceList) {
            // Rows depend on every stock page: none is ready before the price list.
            return Ok(Vec::new());
        }
        let mut rows = Vec::with_capacity(max_rows.min(4096));
        while rows.len() < max_rows {
            let Some(page) = self.pending.front_mut() else {
                break;
            };
            let take = (max_rows - rows.len()).min(page.items.len() - page.next);
            for (range, id) in &page.items[page.next..page.next + take] {
                let data = item_data(&page.text[range.clone()]);
                let stock = self.stock.get(id).copied().unwrap_or(0);
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
    fn expect_object(self, raw: &RawValue) -> Result<(), TransformError> {
        if raw.get().starts_with('{') {
            Ok(())
        } else {
            Err(self.invalid(
                None,
                None,
                format!("not a JSON object: {}", snippet(raw.get())),
            ))
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

/// The start of a piece of JSON, for error messages.
fn snippet(json: &str) -> &str {
    match json.char_indices().nth(40) {
        Some((end, _)) => &json[..end],
        None => json,
    }
}

/// A product id: a non-negative whole number, or a string of digits (its
/// canonical text is the number's decimal form).
fn canonical_id(value: &Value) -> Result<u64, String> {
    match value {
        Value::Number(n) => n
            .as_u64()
            .ok_or_else(|| format!("{n} is not a whole non-negative number")),
        Value::String(s) => {
            let digits = s.trim();
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("{s:?} is not a numeric id"));
            }
            digits
                .parse::<u64>()
                .map_err(|_| format!("{s:?} is too large for a product id"))
        }
        other => Err(format!("{other} is not a number or a numeric string")),
    }
}

/// A balance truncated toward zero. Numbers and numeric strings are accepted
/// (guess: the API has only been seen sending numbers; a string of digits
/// loses nothing when read as one).
fn parse_balance(value: &Value) -> Result<i64, String> {
    let float = match value {
        Value::Number(n) => {
            if let Some(whole) = n.as_i64() {
                return Ok(whole);
            }
            n.as_f64()
        }
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match float {
        // i64::MIN and MAX are not exact in f64: stay strictly inside them.
        Some(f) if f.is_finite() && f.abs() < 9.2e18 => Ok(f.trunc() as i64),
        _ => Err(format!("{value} is not a usable number")),
    }
}

/// The item without `product_id`, compact, every other member as it came.
fn item_data(item: &str) -> String {
    let mut out = String::with_capacity(item.len());
    let mut de = serde_json::Deserializer::from_str(item);
    // The item was already parsed once when its page was pushed: it is valid.
    de::Deserializer::deserialize_map(&mut de, DataWriter { out: &mut out })
        .expect("price-list item was validated when its page was pushed");
    out
}

struct DataWriter<'o> {
    out: &'o mut String,
}

impl<'de> Visitor<'de> for DataWriter<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a price-list item object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.out.push('{');
        let mut first = true;
        // Keys are borrowed from the page unless they hold escapes: one
        // allocation less per field, which the guest's allocator feels.
        while let Some(key) = map.next_key::<Key<'de>>()? {
            let value: &'de RawValue = map.next_value()?;
            if key.0 == "product_id" {
                continue;
            }
            if !first {
                self.out.push(',');
            }
            first = false;
            match &key.0 {
                // A key borrowed from the page holds no escapes, and a valid
                // page holds no raw control characters: it is written as is.
                std::borrow::Cow::Borrowed(key) => {
                    self.out.push('"');
                    self.out.push_str(key);
                    self.out.push('"');
                }
                std::borrow::Cow::Owned(key) => push_json_string(self.out, key),
            }
            self.out.push(':');
            let value = value.get();
            if value.starts_with(['{', '[']) {
                push_compact(self.out, value);
            } else {
                // A scalar is one token: no whitespace to leave out.
                self.out.push_str(value);
            }
        }
        self.out.push('}');
        Ok(())
    }
}

/// A map key, borrowed from the input when it can be.
struct Key<'de>(std::borrow::Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;

        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }

            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Borrowed(v)))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Owned(v.to_owned())))
            }
        }

        deserializer.deserialize_str(KeyVisitor)
    }
}

/// Writes `s` as a JSON string literal.
fn push_json_string(out: &mut String, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        out.push_str(&serde_json::to_string(s).expect("a string always serializes"));
    }
}

/// Copies valid JSON text, leaving out whitespace outside strings.
fn push_compact(out: &mut String, json: &str) {
    let bytes = json.as_bytes();
    let mut in_string = false;
    let mut escaped = false;
    let mut run_start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
            // Whitespace is ASCII: slicing around it keeps UTF-8 intact.
            out.push_str(&json[run_start..i]);
            run_start = i + 1;
        } else if b == b'"' {
            in_string = true;
        }
    }
    out.push_str(&json[run_start..]);
}
