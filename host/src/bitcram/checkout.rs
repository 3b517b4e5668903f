//! The checkout found by its number, and its warehouse.

use serde::Deserialize;
use serde_json::Value;

/// One checkout in the discovery response; other fields are ignored.
#[derive(Deserialize)]
struct CheckoutItem {
    id: Option<Value>,
    checkout_number: Option<Value>,
    warehouse: Option<WarehouseRef>,
}

#[derive(Deserialize)]
struct WarehouseRef {
    id: Option<Value>,
}

#[derive(Deserialize)]
struct CheckoutList {
    items: Vec<CheckoutItem>,
}

/// The checkout id and warehouse id from a discovery body already checked
/// by [`check_envelope`].
pub(super) fn checkout_ids(body: &[u8], number: &str) -> Result<(u64, u64), String> {
    let list: CheckoutList = serde_json::from_slice(body)
        .map_err(|e| format!("the checkout list is not as expected ({e})"))?;
    let item = match list.items.as_slice() {
        [] => return Err(format!("no checkout has the number {number}")),
        [item] => item,
        items => {
            let ids: Vec<String> = items
                .iter()
                .map(|i| i.id.as_ref().map_or("?".to_owned(), Value::to_string))
                .collect();
            return Err(format!(
                "{} checkouts have the number {number} (ids {}); expected one",
                items.len(),
                ids.join(", ")
            ));
        }
    };
    // A server that ignored the filter would return some checkout: make
    // sure it is the one asked for.
    if let Some(found) = &item.checkout_number
        && !same_number(found, number)
    {
        return Err(format!(
            "asked for checkout number {number} but got checkout number {found}"
        ));
    }
    let id = item
        .id
        .as_ref()
        .and_then(as_id)
        .ok_or_else(|| format!("checkout {number} has no usable `id`"))?;
    let warehouse_id = item
        .warehouse
        .as_ref()
        .and_then(|w| w.id.as_ref())
        .and_then(as_id)
        .ok_or_else(|| format!("checkout {number} has no usable `warehouse.id`"))?;
    Ok((id, warehouse_id))
}

/// An id sent as a number or as a string of digits.
fn as_id(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().ok()
        }
        _ => None,
    }
}

/// Whether a `checkout_number` in a response is `wanted` (`3`, `"3"` and
/// `"03"` are the same number).
fn same_number(found: &Value, wanted: &str) -> bool {
    let found = match found {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_owned(),
        _ => return false,
    };
    match (found.parse::<u64>(), wanted.parse::<u64>()) {
        (Ok(a), Ok(b)) => a == b,
        _ => found == wanted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkout_ids_accept_numbers_and_numeric_strings() {
        let body = br#"{"items":[{"id":"17","checkout_number":"03","warehouse":{"id":5}}]}"#;
        assert_eq!(checkout_ids(body, "3"), Ok((17, 5)));
        let body = br#"{"items":[{"id":17,"warehouse":{"id":"0005"}}]}"#;
        assert_eq!(checkout_ids(body, "3"), Ok((17, 5)));
        let body = br#"{"items":[{"id":17,"checkout_number":4,"warehouse":{"id":5}}]}"#;
        assert!(
            checkout_ids(body, "3")
                .unwrap_err()
                .contains("got checkout number 4")
        );
        let body = br#"{"items":[{"id":-1,"warehouse":{"id":5}}]}"#;
        assert!(checkout_ids(body, "3").unwrap_err().contains("`id`"));
        let body = br#"{"items":[{"id":17}]}"#;
        assert!(
            checkout_ids(body, "3")
                .unwrap_err()
                .contains("warehouse.id")
        );
    }
}
