//! The default component under wasmtime, through the host's real plugin path,
//! against the same logic compiled natively and fed item by item from the
//! host's own split of each page: every case must give the same rows, counts
//! and errors. A few cases also pin the expected output, so that
//! both sides cannot drift together unnoticed.

use bitcram_sync::model::Source;
use bitcram_sync::plugin::{GuestError, PluginError, PluginSource};
use bitcram_sync::transform::TransformFailure;

use crate::support;

/// (name, stock pages, price-list pages)
const CASES: &[(&str, &[&str], &[&str])] = &[
    (
        "left join, nulls, unknown fields, dropped stock",
        &[
            r#"{"items":[{"product_id":2,"warehouse_id":5,"product_balance":7},{"product":{"id":99},"product_balance":3}]}"#,
        ],
        &[
            r#"{"items":[{"product_id":1,"price":10.5,"product_name":"Café con leche","x":{"a":[1, 2]}},{"product_id":"2","price":null,"product_name":"Té"}]}"#,
        ],
    ),
    (
        "fractional and negative balances, nested ids, null balance",
        &[
            r#"{"items":[{"product":{"id":1},"product_balance":2.9},{"product_id":2,"product_balance":-2.9},{"product_id":3,"product_balance":null}]}"#,
        ],
        &[r#"{"items":[{"product_id":1},{"product_id":2},{"product_id":3},{"product_id":4}]}"#],
    ),
    (
        "several pages",
        &[
            r#"{"items":[{"product_id":1,"product_balance":1}]}"#,
            r#"{"items":[{"product_id":3,"product_balance":3}]}"#,
        ],
        &[
            r#"{"items":[{"product_id":1},{"product_id":2}]}"#,
            r#"{"items":[]}"#,
            r#"{"items":[{"product_id":3}]}"#,
        ],
    ),
    (
        "empty catalog",
        &[r#"{"items":[{"product_id":1,"product_balance":1}]}"#],
        &[r#"{"items":[]}"#],
    ),
    (
        "duplicate in the price list",
        &[],
        &[r#"{"items":[{"product_id":1},{"product_id":"1"}]}"#],
    ),
    (
        "duplicate in the stock",
        &[
            r#"{"items":[{"product_id":8,"product_balance":1},{"product":{"id":8},"product_balance":2}]}"#,
        ],
        &[r#"{"items":[{"product_id":8}]}"#],
    ),
    ("malformed JSON", &[], &[r#"{"items":[{"product_id":1},"#]),
    ("missing items", &[r#"{"data":[]}"#], &[r#"{"items":[]}"#]),
    (
        "count larger than items",
        &[],
        &[r#"{"items":[{"product_id":1}],"count":2}"#],
    ),
    (
        "item without id",
        &[],
        &[r#"{"items":[{"product_id":1},{"price":3}]}"#],
    ),
    (
        "non-numeric id",
        &[],
        &[r#"{"items":[{"product_id":"A-1"}]}"#],
    ),
    (
        "stock item without balance",
        &[r#"{"items":[{"product_id":4}]}"#],
        &[r#"{"items":[]}"#],
    ),
    ("item that is not an object", &[], &[r#"{"items":[[1,2]]}"#]),
];

/// Source, item (its position among the source's items), product id, field.
type Location = (String, Option<u32>, Option<String>, Option<String>);

/// Rows and counts, or the error's kind and location, in one comparable form.
#[derive(Debug, PartialEq)]
enum Outcome {
    Rows {
        rows: Vec<(String, String, i64)>,
        counts: (u64, u64, u64, u64),
    },
    Error {
        kind: &'static str,
        at: Option<Location>,
        message: String,
    },
}

fn native(stock: &[&str], price_list: &[&str]) -> Outcome {
    use bitcram_transform::{Source as S, Transform, TransformError as E};
    let mut t = Transform::new();
    let mut malformed = None;
    let result = (|| {
        for (source, name, pages) in [
            (
                S::Checkout,
                Source::Checkout,
                &[r#"{"items":[{"id":17}]}"#][..],
            ),
            (S::Stock, Source::Stock, stock),
            (S::PriceList, Source::PriceList, price_list),
        ] {
            for (page, body) in pages.iter().enumerate() {
                let mut pushed = Ok(());
                let split =
                    bitcram_sync::bitcram::split_list(body.as_bytes(), 1000, 1 << 20, |items| {
                        pushed = t.push_items(source, items);
                        pushed.clone().map_err(|e| e.to_string())
                    });
                pushed?;
                if let Err(reason) = split {
                    malformed = Some(
                        TransformFailure::MalformedBody {
                            body: name,
                            page: page as u32,
                            origin: None,
                            reason,
                        }
                        .to_string(),
                    );
                    return Ok(None);
                }
            }
            t.end_source(source)?;
        }
        let summary = t.finish()?;
        let mut rows = Vec::new();
        loop {
            let batch = t.next_batch(1000)?;
            if batch.is_empty() {
                break;
            }
            rows.extend(batch.into_iter().map(|r| (r.id, r.data, r.stock)));
        }
        Ok::<_, E>(Some((rows, summary)))
    })();
    if let Some(message) = malformed {
        return Outcome::Error {
            kind: "malformed-body",
            at: None,
            message,
        };
    }
    let source = |s: S| match s {
        S::Checkout => "checkout",
        S::Stock => "stock",
        S::PriceList => "price-list",
    };
    match result {
        Ok(Some((rows, s))) => Outcome::Rows {
            rows,
            counts: (
                s.price_list_items,
                s.stock_items,
                s.dropped_stock_items,
                s.rows,
            ),
        },
        Ok(None) => unreachable!("a malformed body returned above"),
        Err(E::MalformedBody(i)) => {
            panic!("item by item, the transform found a malformed body: {i}")
        }
        Err(E::InvalidItem(i)) => Outcome::Error {
            kind: "invalid-item",
            at: Some((
                source(i.source).to_owned(),
                i.item,
                i.product_id.clone(),
                i.field.clone(),
            )),
            message: i.message.clone(),
        },
        Err(E::DuplicateKey {
            source: s,
            product_id,
        }) => Outcome::Error {
            kind: "duplicate-key",
            at: Some((source(s).to_owned(), None, Some(product_id), None)),
            message: String::new(),
        },
        Err(E::Protocol(m)) => Outcome::Error {
            kind: "protocol",
            at: None,
            message: m,
        },
    }
}

async fn component(
    plugin: &bitcram_sync::plugin::Plugin,
    stock: &[&str],
    price_list: &[&str],
) -> Outcome {
    let source = |s: Source| s.name().to_owned();
    match support::transform(plugin, stock, price_list).await {
        Ok((rows, report)) => {
            let s = report.summary;
            Outcome::Rows {
                rows: rows.into_iter().map(|r| (r.id, r.data, r.stock)).collect(),
                counts: (
                    s.price_list_items,
                    s.stock_items,
                    s.dropped_stock_items,
                    s.rows,
                ),
            }
        }
        Err(failure @ TransformFailure::MalformedBody { .. }) => Outcome::Error {
            kind: "malformed-body",
            at: None,
            message: failure.to_string(),
        },
        Err(TransformFailure::Plugin(PluginError::Guest { error, .. })) => match *error {
            GuestError::MalformedBody(ref i) | GuestError::InvalidItem(ref i) => Outcome::Error {
                kind: error.kind(),
                at: Some((
                    source(i.source),
                    i.item,
                    i.product_id.clone(),
                    i.field.clone(),
                )),
                message: i.message.clone(),
            },
            GuestError::DuplicateKey(d) => Outcome::Error {
                kind: "duplicate-key",
                at: Some((source(d.source), None, Some(d.product_id), None)),
                message: String::new(),
            },
            GuestError::Protocol(m) => Outcome::Error {
                kind: "protocol",
                at: None,
                message: m,
            },
            GuestError::Other(m) => Outcome::Error {
                kind: "other",
                at: None,
                message: m,
            },
        },
        Err(other) => panic!("expected rows or a guest error, got: {other}"),
    }
}

#[tokio::test]
async fn component_matches_native_logic_case_by_case() {
    let plugin = support::load(PluginSource::Embedded).await.unwrap();
    for (name, stock, price_list) in CASES {
        let expected = native(stock, price_list);
        let got = component(&plugin, stock, price_list).await;
        assert_eq!(got, expected, "case: {name}");
    }
}

#[tokio::test]
async fn component_rows_are_the_original_jobs_rows() {
    let plugin = support::load(PluginSource::Embedded).await.unwrap();
    let (_, stock, price_list) = CASES[0];
    let got = component(&plugin, stock, price_list).await;
    assert_eq!(
        got,
        Outcome::Rows {
            rows: vec![
                (
                    "1".into(),
                    r#"{"price":10.5,"product_name":"Café con leche","x":{"a":[1,2]}}"#.into(),
                    0
                ),
                (
                    "2".into(),
                    r#"{"price":null,"product_name":"Té"}"#.into(),
                    7
                ),
            ],
            counts: (2, 2, 1, 2),
        }
    );
    let (_, stock, price_list) = CASES[1];
    let Outcome::Rows { rows, .. } = component(&plugin, stock, price_list).await else {
        panic!("expected rows");
    };
    let stock: Vec<i64> = rows.iter().map(|r| r.2).collect();
    assert_eq!(stock, vec![2, -2, 0, 0]);
}

#[tokio::test]
async fn guest_errors_arrive_with_their_variant_and_the_plugin_named() {
    let plugin = support::load(PluginSource::Embedded).await.unwrap();
    let err = support::transform(
        &plugin,
        &[],
        &[r#"{"items":[{"product_id":1},{"product_id":1}]}"#],
    )
    .await
    .unwrap_err();
    let TransformFailure::Plugin(PluginError::Guest {
        plugin: who, error, ..
    }) = &err
    else {
        panic!("expected a guest error, got {err}");
    };
    assert!(
        matches!(&**error, GuestError::DuplicateKey(d) if d.product_id == "1" && d.source == Source::PriceList),
        "{error:?}"
    );
    assert!(who.starts_with("bitcram-transform 0.2.0 (sha256 "), "{who}");
    let message = err.to_string();
    assert!(
        message.contains("duplicate key: product 1 occurs more than once in the price-list body"),
        "{message}"
    );
}

/// Records the size of every batch.
#[derive(Default)]
struct BatchSizes(Vec<usize>, u64);

impl bitcram_sync::transform::RowSink for BatchSizes {
    async fn accept(&mut self, rows: Vec<bitcram_sync::model::Row>) -> anyhow::Result<()> {
        self.0.push(rows.len());
        self.1 += rows.iter().filter(|r| r.id.parse::<u64>().is_ok()).count() as u64;
        Ok(())
    }
}

#[tokio::test]
async fn rows_stream_to_the_sink_in_batches_while_pages_arrive() {
    let page = |from: u64, to: u64| {
        let items: Vec<String> = (from..to)
            .map(|id| format!(r#"{{"product_id":{id},"n":"p{id}"}}"#))
            .collect();
        format!(r#"{{"items":[{}]}}"#, items.join(","))
    };
    let pages = [
        (Source::Checkout, br#"{"items":[]}"#.to_vec()),
        (Source::Stock, br#"{"items":[]}"#.to_vec()),
        (Source::PriceList, page(0, 1500).into_bytes()),
        (Source::PriceList, page(1500, 2500).into_bytes()),
    ];
    let plugin = support::load(PluginSource::Embedded).await.unwrap();
    let mut sink = BatchSizes::default();
    let report = bitcram_sync::transform::run_transform(
        &plugin,
        &support::context(),
        futures_util::stream::iter(pages.into_iter().map(Ok)),
        &mut sink,
    )
    .await
    .unwrap();
    // Each page is drained before the next is pushed: 1000 + 500, then 1000.
    assert_eq!(sink.0, vec![1000, 500, 1000]);
    assert_eq!((report.rows, sink.1), (2500, 2500));
    assert!(report.plugin_peak_memory_bytes > 0);
}
