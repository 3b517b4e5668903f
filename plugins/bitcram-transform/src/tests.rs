//! Native unit tests of the merge rules. The same cases run through the real
//! component under wasmtime in the workspace's `tests/` crate.

use crate::{InputError, Row, Source, Transform, TransformError};

/// Runs a whole transform: one checkout page, the stock pages, the price-list
/// pages; returns every row and the summary.
fn run(stock: &[&str], price_list: &[&str]) -> Result<(Vec<Row>, crate::Summary), TransformError> {
    let mut t = Transform::new();
    t.push(Source::Checkout, br#"{"items":[{"id":17}]}"#.to_vec())?;
    for page in stock {
        t.push(Source::Stock, page.as_bytes().to_vec())?;
    }
    for page in price_list {
        t.push(Source::PriceList, page.as_bytes().to_vec())?;
    }
    let summary = t.finish()?;
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
