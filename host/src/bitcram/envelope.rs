//! The check every list body passes before the transform sees it.

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;

/// A list response's envelope. The items are skipped, not built: this
/// checks the JSON without holding it.
#[derive(Deserialize)]
struct ListEnvelope {
    items: Vec<IgnoredAny>,
    count: Option<Value>,
    total: Option<Value>,
}

/// Checks a list body: one complete JSON object with an `items` array, and
/// no `count` or `total` larger than the items it carries (no paginated
/// response has ever been seen; one would be a partial list). Returns the
/// number of items.
pub(super) fn check_envelope(body: &[u8]) -> Result<usize, String> {
    // A derived struct also accepts a JSON array as its fields in order.
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        None => return Err("the body is empty".to_owned()),
        Some(b'{') => {}
        Some(_) if serde_json::from_slice::<IgnoredAny>(body).is_ok() => {
            return Err("the body is JSON but not an object with an `items` array".to_owned());
        }
        Some(_) => return Err("the body is not JSON".to_owned()),
    }
    let envelope: ListEnvelope = serde_json::from_slice(body).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Eof => format!("the body is cut short ({e})"),
            Category::Syntax | Category::Io => format!("the body is not JSON ({e})"),
            Category::Data => format!("the body is not a list {{\"items\": [...]}} ({e})"),
        }
    })?;
    let items = envelope.items.len();
    for (field, value) in [("count", &envelope.count), ("total", &envelope.total)] {
        if let Some(value) = value
            && reported_len(value).is_some_and(|reported| reported > items as f64)
        {
            return Err(format!(
                "the response reports {field} {value} but carries {items} items; a partial list \
                 is refused"
            ));
        }
    }
    Ok(items)
}

/// A `count` or `total` as a number, if it is one (or a numeric string).
/// Other shapes are unknown and cannot be compared.
///
/// Guess: no Bitcram response has been seen with a count, total or any
/// pagination field (see the API notes); these two names are the likeliest,
/// and a larger one than the items carried is refused rather than trusted.
fn reported_len(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes() {
        assert_eq!(check_envelope(br#"{"items":[1,{"a":2}]}"#), Ok(2));
        assert_eq!(check_envelope(br#" {"count":2,"items":[1,2]} "#), Ok(2));
        assert_eq!(check_envelope(br#"{"items":[],"total":null}"#), Ok(0));
        let err = |body: &[u8]| check_envelope(body).unwrap_err();
        assert!(err(br#"{"items":[1,2"#).contains("cut short"));
        assert!(err(b"<html>").contains("not JSON"));
        assert!(err(b"").contains("empty"));
        assert!(err(br#"[[1,2]]"#).contains("not an object"));
        assert!(err(br#"{"data":[]}"#).contains("items"));
        assert!(err(br#"{"items":{}}"#).contains("items"));
        assert!(err(br#"{"items":[1],"count":2}"#).contains("count 2"));
        assert!(err(br#"{"items":[1],"total":"3"}"#).contains("total \"3\""));
        assert!(err(br#"{"items":[1]} x"#).contains("not JSON"));
        // As the default transform reads them: a string holding a number
        // counts, anything else is ignored.
        assert_eq!(check_envelope(br#"{"items":[1],"count":"1"}"#), Ok(1));
        assert_eq!(check_envelope(br#"{"items":[1],"count":"many"}"#), Ok(1));
    }
}
