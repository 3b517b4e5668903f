//! Native unit tests of the merge rules. The same cases run through the real
//! component under wasmtime in the workspace's `tests/` crate.

use crate::{InputError, Row, Source, Transform, TransformError};

const CHECKOUT: &str = r#"{"items":[{"id":17}]}"#;

/// Runs a whole transform page by page: one checkout page, the stock pages,
/// the price-list pages; returns every row and the summary. Where every page
/// is a list, also runs it item by item (two items per call, as the host of
/// the item-by-item contract would push them) and checks that it gives the
/// same rows and summary, or the same error but for where it was found.
fn run(stock: &[&str], price_list: &[&str]) -> Result<(Vec<Row>, crate::Summary), TransformError> {
    let by_pages = run_pages(stock, price_list);
    // A body that is not a complete list never reaches an item-by-item
    // transform: the host refuses it.
    if matches!(by_pages, Err(TransformError::MalformedBody(_))) {
        return by_pages;
    }
    if let Some(by_items) = run_items(stock, price_list) {
        match (&by_pages, &by_items) {
            (Ok(pages), Ok(items)) => assert_eq!(pages, items, "item by item"),
            (Err(pages), Err(items)) => assert_eq!(
                without_position(pages.clone()),
                without_position(items.clone()),
                "item by item"
            ),
            _ => panic!("by pages {by_pages:?}, item by item {by_items:?}"),
        }
    }
    by_pages
}

fn run_pages(
    stock: &[&str],
    price_list: &[&str],
) -> Result<(Vec<Row>, crate::Summary), TransformError> {
    let mut t = Transform::new();
    t.push(Source::Checkout, CHECKOUT.as_bytes().to_vec())?;
    for page in stock {
        t.push(Source::Stock, page.as_bytes().to_vec())?;
    }
    for page in price_list {
        t.push(Source::PriceList, page.as_bytes().to_vec())?;
    }
    let summary = t.finish()?;
    drain(&mut t, summary)
}

/// The items of a list page, each as its text; `None` for a page the host
/// would refuse (not a list).
fn items(page: &str) -> Option<Vec<String>> {
    #[derive(serde::Deserialize)]
    struct List<'a> {
        #[serde(borrow)]
        items: Vec<&'a serde_json::value::RawValue>,
    }
    let list: List<'_> = serde_json::from_str(page).ok()?;
    Some(list.items.iter().map(|raw| raw.get().to_owned()).collect())
}

fn run_items(
    stock: &[&str],
    price_list: &[&str],
) -> Option<Result<(Vec<Row>, crate::Summary), TransformError>> {
    let mut sources = Vec::new();
    for (source, pages) in [
        (Source::Checkout, &[CHECKOUT][..]),
        (Source::Stock, stock),
        (Source::PriceList, price_list),
    ] {
        let mut all = Vec::new();
        for page in pages {
            all.extend(items(page)?);
        }
        sources.push((source, all));
    }
    let mut t = Transform::new();
    let go = || {
        for (source, items) in sources {
            for pair in items.chunks(2) {
                t.push_items(source, pair.to_vec())?;
            }
            t.end_source(source)?;
        }
        let summary = t.finish()?;
        drain(&mut t, summary)
    };
    Some(go())
}

/// An error with its page and item positions blanked.
fn without_position(error: TransformError) -> TransformError {
    match error {
        TransformError::InvalidItem(e) => TransformError::InvalidItem(InputError {
            page: 0,
            item: None,
            ..e
        }),
        other => other,
    }
}

fn drain(
    t: &mut Transform,
    summary: crate::Summary,
) -> Result<(Vec<Row>, crate::Summary), TransformError> {
    let mut rows = Vec::new();
    loop {
        let batch = t.next_batch(2)?;
        if batch.is_empty() {
            break;
        }
        assert!(batch.len() <= 2, "a batch larger than asked for");
        rows.extend(batch);
    }
    Ok((rows, summary))
}

fn row(id: &str, data: &str, stock: i64) -> Row {
    Row {
        id: id.to_owned(),
        data: data.to_owned(),
        stock,
    }
}

#[test]
fn left_join_keeps_every_price_list_item_in_order() {
    let (rows, summary) = run(
        &[r#"{"items":[
            {"product_id":2,"warehouse_id":5,"product_balance":7},
            {"product_id":99,"warehouse_id":5,"product_balance":3}]}"#],
        &[r#"{"items":[
            {"product_id":1,"price":10.5,"product_name":"Café"},
            {"product_id":2,"price":null,"product_name":"Té"},
            {"product_id":3,"price":1,"product_name":"Mate"}]}"#],
    )
    .unwrap();
    assert_eq!(
        rows,
        vec![
            row("1", r#"{"price":10.5,"product_name":"Café"}"#, 0),
            row("2", r#"{"price":null,"product_name":"Té"}"#, 7),
            row("3", r#"{"price":1,"product_name":"Mate"}"#, 0),
        ]
    );
    assert_eq!(summary.price_list_items, 3);
    assert_eq!(summary.stock_items, 2);
    assert_eq!(
        summary.dropped_stock_items, 1,
        "product 99 is not in the price list"
    );
    assert_eq!(summary.rows, 3);
}

#[test]
fn data_keeps_unknown_fields_nulls_order_and_number_text() {
    let (rows, _) = run(
        &[r#"{"items":[]}"#],
        &[r#"{"items":[{ "zeta" : {"nested": [1, 2.50, "a b"]},
              "product_id" : "214101", "price": 12345.0, "big": 123456789012345678901234567890,
              "product_image_b_format_url": null, "esc": "line\nbreak \"q\"" }]}"#],
    )
    .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].id, "214101");
    assert_eq!(
        rows[0].data,
        r#"{"zeta":{"nested":[1,2.50,"a b"]},"price":12345.0,"big":123456789012345678901234567890,"product_image_b_format_url":null,"esc":"line\nbreak \"q\""}"#
    );
    let parsed: serde_json::Value = serde_json::from_str(&rows[0].data).unwrap();
    assert!(parsed.get("product_id").is_none());
}

#[test]
fn ids_accept_numbers_and_numeric_strings_in_canonical_form() {
    let (rows, _) = run(
        &[r#"{"items":[{"product_id":"0042","product_balance":5},{"product":{"id":"7"},"product_balance":1}]}"#],
        &[r#"{"items":[{"product_id":42},{"product_id":" 7 "}]}"#],
    )
    .unwrap();
    assert_eq!(rows, vec![row("42", "{}", 5), row("7", "{}", 1)]);
}

#[test]
fn stock_is_truncated_toward_zero_and_accepts_nested_ids() {
    let (rows, _) = run(
        &[r#"{"items":[
            {"product":{"id":1},"product_balance":2.9},
            {"product_id":2,"product":{"id":2},"product_balance":-2.9},
            {"product_id":3,"product_balance":-2},
            {"product_id":4,"product_balance":"3.5"},
            {"product_id":5,"product_balance":null}]}"#],
        &[r#"{"items":[{"product_id":1},{"product_id":2},{"product_id":3},{"product_id":4},{"product_id":5}]}"#],
    )
    .unwrap();
    let stock: Vec<i64> = rows.iter().map(|r| r.stock).collect();
    assert_eq!(stock, vec![2, -2, -2, 3, 0]);
}

#[test]
fn null_balances_are_counted() {
    let (_, summary) = run(
        &[r#"{"items":[{"product_id":5,"product_balance":null}]}"#],
        &[r#"{"items":[{"product_id":5}]}"#],
    )
    .unwrap();
    assert_eq!(summary.null_balances, 1);
}

#[test]
fn several_pages_per_source_are_joined() {
    let (rows, summary) = run(
        &[
            r#"{"items":[{"product_id":1,"product_balance":1}]}"#,
            r#"{"items":[{"product_id":3,"product_balance":3}]}"#,
        ],
        &[
            r#"{"items":[{"product_id":1},{"product_id":2}]}"#,
            r#"{"items":[]}"#,
            r#"{"items":[{"product_id":3}]}"#,
        ],
    )
    .unwrap();
    let got: Vec<(&str, i64)> = rows.iter().map(|r| (r.id.as_str(), r.stock)).collect();
    assert_eq!(got, vec![("1", 1), ("2", 0), ("3", 3)]);
    assert_eq!(summary.dropped_stock_items, 0);
}

#[test]
fn duplicate_product_in_price_list_is_an_error_naming_it() {
    let err = run(
        &[],
        &[
            r#"{"items":[{"product_id":1}]}"#,
            r#"{"items":[{"product_id":"1"}]}"#,
        ],
    )
    .unwrap_err();
    assert_eq!(
        err,
        TransformError::DuplicateKey {
            source: Source::PriceList,
            product_id: "1".to_owned()
        }
    );
    assert!(err.to_string().contains("product 1"), "{err}");
}

#[test]
fn duplicate_product_in_stock_is_an_error_naming_it() {
    let err = run(
        &[r#"{"items":[{"product_id":8,"product_balance":1},{"product":{"id":8},"product_balance":2}]}"#],
        &[r#"{"items":[{"product_id":8}]}"#],
    )
    .unwrap_err();
    assert_eq!(
        err,
        TransformError::DuplicateKey {
            source: Source::Stock,
            product_id: "8".to_owned()
        }
    );
}

fn input_error(err: TransformError) -> InputError {
    match err {
        TransformError::MalformedBody(e) | TransformError::InvalidItem(e) => e,
        other => panic!("expected an input error, got {other:?}"),
    }
}

#[test]
fn malformed_json_names_the_source_and_page() {
    let err = run(&[], &[r#"{"items":[]}"#, r#"{"items":[{"product_id":1},"#]).unwrap_err();
    assert!(matches!(err, TransformError::MalformedBody(_)), "{err:?}");
    let e = input_error(err);
    assert_eq!((e.source, e.page, e.item), (Source::PriceList, 1, None));
    assert!(e.message.contains("not valid JSON"), "{}", e.message);
}

#[test]
fn malformed_checkout_is_refused() {
    let mut t = Transform::new();
    let err = t.push(Source::Checkout, b"<html>".to_vec()).unwrap_err();
    assert_eq!(input_error(err).source, Source::Checkout);
}

#[test]
fn missing_items_array_is_an_error() {
    for body in [
        r#"{"data":[]}"#,
        r#"{"items":null}"#,
        r#"[]"#,
        r#"{"items":{}}"#,
    ] {
        let err = run(&[body], &[]).unwrap_err();
        assert!(
            matches!(err, TransformError::MalformedBody(_)),
            "{body}: {err:?}"
        );
        assert_eq!(input_error(err).source, Source::Stock, "{body}");
    }
    let err = run(&[], &[r#"{"total":0}"#]).unwrap_err();
    assert!(err.to_string().contains("no `items` array"), "{err}");
}

#[test]
fn a_count_larger_than_the_items_carried_is_an_error() {
    let err = run(&[], &[r#"{"items":[{"product_id":1}],"count":2}"#]).unwrap_err();
    assert!(err.to_string().contains("incomplete"), "{err}");
    let err = run(&[r#"{"total":5,"items":[]}"#], &[]).unwrap_err();
    assert!(err.to_string().contains("`total` says 5"), "{err}");
    // A count equal to the items carried is fine.
    assert!(run(&[], &[r#"{"items":[{"product_id":1}],"count":1}"#]).is_ok());
    // As the host's envelope check reads them: a string holding a number
    // counts, anything else is ignored.
    let err = run(&[], &[r#"{"items":[{"product_id":1}],"total":" 3 "}"#]).unwrap_err();
    assert!(err.to_string().contains("`total` says 3 items"), "{err}");
    assert!(run(&[], &[r#"{"items":[{"product_id":1}],"count":"1"}"#]).is_ok());
    assert!(run(&[], &[r#"{"items":[{"product_id":1}],"count":"many"}"#]).is_ok());
}

#[test]
fn an_item_without_a_usable_id_names_page_item_and_field() {
    let cases = [
        (r#"{"items":[{"product_id":1},{"price":3}]}"#, "missing"),
        (
            r#"{"items":[{"product_id":1},{"product_id":null}]}"#,
            "missing",
        ),
        (
            r#"{"items":[{"product_id":1},{"product_id":1.5}]}"#,
            "not a whole",
        ),
        (
            r#"{"items":[{"product_id":1},{"product_id":-3}]}"#,
            "not a whole",
        ),
        (
            r#"{"items":[{"product_id":1},{"product_id":"A-1"}]}"#,
            "not a numeric id",
        ),
        (
            r#"{"items":[{"product_id":1},{"product_id":""}]}"#,
            "not a numeric id",
        ),
        (
            r#"{"items":[{"product_id":1},{"product_id":true}]}"#,
            "not a number",
        ),
    ];
    for (body, expected) in cases {
        let err = run(&[], &[body]).unwrap_err();
        assert!(
            matches!(err, TransformError::InvalidItem(_)),
            "{body}: {err:?}"
        );
        let e = input_error(err);
        assert_eq!(
            (e.source, e.page, e.item),
            (Source::PriceList, 0, Some(1)),
            "{body}"
        );
        assert_eq!(e.field.as_deref(), Some("product_id"), "{body}");
        assert!(e.message.contains(expected), "{body}: {}", e.message);
    }
}

#[test]
fn items_that_are_not_objects_are_refused() {
    for body in [
        r#"{"items":[[1,2]]}"#,
        r#"{"items":[7]}"#,
        r#"{"items":[null]}"#,
    ] {
        let err = run(&[], &[body]).unwrap_err();
        assert!(
            matches!(err, TransformError::InvalidItem(_)),
            "{body}: {err:?}"
        );
        let err = run(&[body], &[]).unwrap_err();
        assert!(
            matches!(err, TransformError::InvalidItem(_)),
            "{body}: {err:?}"
        );
    }
}

#[test]
fn stock_item_errors_name_the_product_and_field() {
    let err = run(&[r#"{"items":[{"product_id":4}]}"#], &[]).unwrap_err();
    let e = input_error(err);
    assert_eq!(e.product_id.as_deref(), Some("4"));
    assert_eq!(e.field.as_deref(), Some("product_balance"));

    let err = run(
        &[r#"{"items":[{"product_id":4,"product_balance":"lots"}]}"#],
        &[],
    )
    .unwrap_err();
    let e = input_error(err);
    assert_eq!(
        (e.product_id.as_deref(), e.field.as_deref()),
        (Some("4"), Some("product_balance"))
    );

    let err = run(
        &[r#"{"items":[{"warehouse_id":5,"product_balance":1}]}"#],
        &[],
    )
    .unwrap_err();
    assert!(
        input_error(err)
            .message
            .contains("neither `product_id` nor `product.id`")
    );

    let err = run(
        &[r#"{"items":[{"product_id":4,"product":{"id":5},"product_balance":1}]}"#],
        &[],
    )
    .unwrap_err();
    assert!(input_error(err).message.contains("disagree"));

    let err = run(
        &[r#"{"items":[{"product_id":4,"product_balance":1e300}]}"#],
        &[],
    )
    .unwrap_err();
    assert!(input_error(err).message.contains("not a usable number"));
}

#[test]
fn pages_out_of_order_or_after_finish_are_protocol_errors() {
    let mut t = Transform::new();
    t.push(Source::PriceList, br#"{"items":[]}"#.to_vec())
        .unwrap();
    let err = t
        .push(Source::Stock, br#"{"items":[]}"#.to_vec())
        .unwrap_err();
    assert!(matches!(err, TransformError::Protocol(_)), "{err:?}");

    let mut t = Transform::new();
    t.finish().unwrap();
    let err = t
        .push(Source::Stock, br#"{"items":[]}"#.to_vec())
        .unwrap_err();
    assert!(matches!(err, TransformError::Protocol(_)), "{err:?}");
    assert!(matches!(t.finish(), Err(TransformError::Protocol(_))));
}

#[test]
fn rows_stream_before_finish_once_the_price_list_has_started() {
    let mut t = Transform::new();
    t.push(
        Source::Stock,
        br#"{"items":[{"product_id":1,"product_balance":4}]}"#.to_vec(),
    )
    .unwrap();
    assert!(
        t.next_batch(10).unwrap().is_empty(),
        "no row before the price list"
    );
    t.push(
        Source::PriceList,
        br#"{"items":[{"product_id":1},{"product_id":2}]}"#.to_vec(),
    )
    .unwrap();
    assert_eq!(t.next_batch(1).unwrap(), vec![row("1", "{}", 4)]);
    t.push(
        Source::PriceList,
        br#"{"items":[{"product_id":3}]}"#.to_vec(),
    )
    .unwrap();
    let summary = t.finish().unwrap();
    assert_eq!(summary.rows, 3);
    assert_eq!(
        t.next_batch(10).unwrap(),
        vec![row("2", "{}", 0), row("3", "{}", 0)]
    );
    assert!(t.next_batch(10).unwrap().is_empty());
}

#[test]
fn an_empty_catalog_gives_no_rows() {
    let (rows, summary) = run(
        &[r#"{"items":[{"product_id":1,"product_balance":1}]}"#],
        &[r#"{"items":[]}"#],
    )
    .unwrap();
    assert!(rows.is_empty());
    assert_eq!((summary.rows, summary.dropped_stock_items), (0, 1));
}

#[test]
fn keys_with_escapes_are_written_back_escaped() {
    let (rows, _) = run(
        &[],
        &[r#"{"items":[{"product_id":1,"a\"b":1,"caf\u00e9":2,"tab\there":3}]}"#],
    )
    .unwrap();
    assert_eq!(rows[0].data, r#"{"a\"b":1,"café":2,"tab\there":3}"#);
    let parsed: serde_json::Value = serde_json::from_str(&rows[0].data).unwrap();
    assert_eq!(parsed["a\"b"], 1);
}

#[test]
fn a_page_that_is_not_utf8_is_malformed() {
    let mut t = Transform::new();
    let err = t
        .push(
            Source::PriceList,
            b"{\"items\":[{\"product_id\":1,\"n\":\"\xff\"}]}".to_vec(),
        )
        .unwrap_err();
    assert!(matches!(err, TransformError::MalformedBody(_)), "{err:?}");
}

#[test]
fn item_by_item_positions_count_on_across_calls_and_rows_come_at_once() {
    let mut t = Transform::new();
    t.end_source(Source::Checkout).unwrap();
    t.push_items(
        Source::Stock,
        vec![r#"{"product_id":1,"product_balance":4}"#.into()],
    )
    .unwrap();
    t.end_source(Source::Stock).unwrap();
    t.push_items(Source::PriceList, vec![r#"{"product_id":1,"a":1}"#.into()])
        .unwrap();
    // The row is final as soon as its item arrived.
    assert_eq!(t.next_batch(10).unwrap(), vec![row("1", r#"{"a":1}"#, 4)]);
    let err = t
        .push_items(
            Source::PriceList,
            vec![r#"{"product_id":2}"#.into(), r#"{"name":"x"}"#.into()],
        )
        .unwrap_err();
    let e = input_error(err);
    assert_eq!((e.source, e.item), (Source::PriceList, Some(2)));
    assert_eq!(e.field.as_deref(), Some("product_id"));
}

#[test]
fn item_by_item_sources_are_pushed_and_ended_in_order() {
    let protocol = |err: TransformError| match err {
        TransformError::Protocol(m) => m,
        other => panic!("expected a protocol error, got {other:?}"),
    };
    let mut t = Transform::new();
    let m = protocol(t.push_items(Source::Stock, vec![]).unwrap_err());
    assert!(m.contains("while checkout was not yet ended"), "{m}");

    let mut t = Transform::new();
    t.end_source(Source::Checkout).unwrap();
    let m = protocol(t.end_source(Source::Checkout).unwrap_err());
    assert!(
        m.contains("checkout: was ended while stock was not yet ended"),
        "{m}"
    );

    let mut t = Transform::new();
    t.end_source(Source::Checkout).unwrap();
    t.end_source(Source::Stock).unwrap();
    let m = protocol(t.finish().unwrap_err());
    assert_eq!(m, "finish was called before price list was ended");
    t.end_source(Source::PriceList).unwrap();
    let m = protocol(t.end_source(Source::PriceList).unwrap_err());
    assert!(m.contains("after every source had ended"), "{m}");
    let summary = t.finish().unwrap();
    assert_eq!(summary.rows, 0);
    let m = protocol(t.push_items(Source::PriceList, vec![]).unwrap_err());
    assert!(m.contains("after finish"), "{m}");

    let mut t = Transform::new();
    t.push(Source::Checkout, CHECKOUT.as_bytes().to_vec())
        .unwrap();
    let m = protocol(t.end_source(Source::Checkout).unwrap_err());
    assert_eq!(m, "pages and items were mixed in one transform");
}

fn duplicate(source: Source, product_id: &str) -> TransformError {
    TransformError::DuplicateKey {
        source,
        product_id: product_id.to_owned(),
    }
}

#[test]
fn a_stock_duplicate_across_pages_is_refused_once_the_stock_is_complete() {
    let pages = [
        r#"{"items":[{"product_id":5,"product_balance":1},{"product_id":3,"product_balance":1}]}"#,
        r#"{"items":[{"product_id":4,"product_balance":1},{"product":{"id":5},"product_balance":2}]}"#,
    ];
    let price_list = r#"{"items":[{"product_id":5}]}"#;
    // At the first price-list page, before it is read.
    let mut t = Transform::new();
    for page in pages {
        t.push(Source::Stock, page.as_bytes().to_vec()).unwrap();
    }
    let err = t
        .push(Source::PriceList, price_list.as_bytes().to_vec())
        .unwrap_err();
    assert_eq!(err, duplicate(Source::Stock, "5"));
    assert_eq!(t.finish().unwrap_err(), duplicate(Source::Stock, "5"));
    // At finish, when no price-list page came.
    let mut t = Transform::new();
    for page in pages {
        t.push(Source::Stock, page.as_bytes().to_vec()).unwrap();
    }
    assert_eq!(t.finish().unwrap_err(), duplicate(Source::Stock, "5"));
    // And the same through `run`, item by item too.
    assert_eq!(
        run(&pages, &[price_list]).unwrap_err(),
        duplicate(Source::Stock, "5")
    );
}

#[test]
fn a_stock_duplicate_across_item_batches_is_refused_at_the_end_of_the_stock() {
    let mut t = Transform::new();
    t.end_source(Source::Checkout).unwrap();
    t.push_items(
        Source::Stock,
        vec![
            r#"{"product_id":9,"product_balance":1}"#.into(),
            r#"{"product_id":2,"product_balance":1}"#.into(),
        ],
    )
    .unwrap();
    t.push_items(
        Source::Stock,
        vec![r#"{"product_id":"009","product_balance":3}"#.into()],
    )
    .unwrap();
    let err = t.end_source(Source::Stock).unwrap_err();
    assert_eq!(err, duplicate(Source::Stock, "9"));
    // The stock stays open: the price list is not taken.
    assert!(matches!(
        t.push_items(Source::PriceList, vec![]),
        Err(TransformError::Protocol(_))
    ));
}

#[test]
fn of_several_stock_duplicates_the_smallest_id_is_named() {
    let err = run(
        &[r#"{"items":[
            {"product_id":7,"product_balance":1},
            {"product_id":7,"product_balance":1},
            {"product_id":3,"product_balance":1},
            {"product_id":3,"product_balance":1}]}"#],
        &[],
    )
    .unwrap_err();
    assert_eq!(err, duplicate(Source::Stock, "3"));
}

#[test]
fn a_price_list_duplicate_is_refused_with_or_without_stock() {
    let stock = [
        r#"{"items":[{"product_id":1,"product_balance":4},{"product_id":2,"product_balance":5}]}"#,
    ];
    let with_stock = run(
        &stock,
        &[
            r#"{"items":[{"product_id":3},{"product_id":2}]}"#,
            r#"{"items":[{"product_id":1},{"product_id":"2"}]}"#,
        ],
    )
    .unwrap_err();
    assert_eq!(with_stock, duplicate(Source::PriceList, "2"));
    let without_stock = run(
        &stock,
        &[
            r#"{"items":[{"product_id":3},{"product_id":2}]}"#,
            r#"{"items":[{"product_id":1},{"product_id":"03"}]}"#,
        ],
    )
    .unwrap_err();
    assert_eq!(without_stock, duplicate(Source::PriceList, "3"));
}

#[test]
fn stock_items_matching_no_product_are_counted_as_dropped() {
    let (rows, summary) = run(
        &[
            r#"{"items":[{"product_id":10,"product_balance":1},{"product_id":11,"product_balance":2}]}"#,
            r#"{"items":[{"product_id":12,"product_balance":3},{"product_id":13,"product_balance":4}]}"#,
        ],
        &[r#"{"items":[{"product_id":13},{"product_id":1},{"product_id":11}]}"#],
    )
    .unwrap();
    let got: Vec<(&str, i64)> = rows.iter().map(|r| (r.id.as_str(), r.stock)).collect();
    assert_eq!(got, vec![("13", 4), ("1", 0), ("11", 2)]);
    assert_eq!(summary.stock_items, 4);
    assert_eq!(summary.dropped_stock_items, 2, "10 and 12");
}

#[test]
fn balances_are_found_for_stock_pushed_out_of_order() {
    // 200 products in a scrambled order over several pages (more than one
    // 64-bit word of the matched-entries bitset); the price list names the
    // even ids from 0 to 398, half of them without stock.
    let id = |n: u64| (n * 37) % 200 * 2 + n % 2;
    let stock: Vec<String> = (0..200u64)
        .collect::<Vec<_>>()
        .chunks(30)
        .map(|chunk| {
            let items: Vec<String> = chunk
                .iter()
                .map(|&n| {
                    let id = id(n);
                    format!(r#"{{"product_id":{id},"product_balance":{}}}"#, 1000 + id)
                })
                .collect();
            format!(r#"{{"items":[{}]}}"#, items.join(","))
        })
        .collect();
    let price_list_items: Vec<String> = (0..200u64)
        .rev()
        .map(|n| format!(r#"{{"product_id":{}}}"#, n * 2))
        .collect();
    let price_list = format!(r#"{{"items":[{}]}}"#, price_list_items.join(","));
    let stock: Vec<&str> = stock.iter().map(String::as_str).collect();
    let (rows, summary) = run(&stock, &[&price_list]).unwrap();
    let in_stock: std::collections::HashSet<u64> = (0..200).map(id).collect();
    assert_eq!(in_stock.len(), 200, "the ids are distinct");
    let expected: Vec<(String, i64)> = (0..200u64)
        .rev()
        .map(|n| {
            let id = n * 2;
            let balance = if in_stock.contains(&id) {
                1000 + id as i64
            } else {
                0
            };
            (id.to_string(), balance)
        })
        .collect();
    let got: Vec<(String, i64)> = rows.into_iter().map(|r| (r.id, r.stock)).collect();
    assert_eq!(got, expected);
    let matched = (0..200u64).filter(|n| in_stock.contains(&(n * 2))).count() as u64;
    assert_eq!(summary.dropped_stock_items, 200 - matched);
}
