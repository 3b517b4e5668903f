//! The check every list body passes before the transform sees it, and the
//! split of a list into its items for plugins that take items.

use std::borrow::Cow;
use std::fmt;

use serde::de::{
    DeserializeSeed, Deserializer, Error as _, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use serde_json::Value;
use serde_json::value::RawValue;

/// Checks a list body: one complete JSON object with an `items` array, and
/// no `count` or `total` larger than the items it carries (no paginated
/// response has ever been seen; one would be a partial list). Returns the
/// number of items. The items are skipped, not built: this checks the JSON
/// without holding it.
pub(super) fn check_envelope(body: &[u8]) -> Result<usize, String> {
    walk_list(body, |_| Ok(()))
}

/// Reads a list body as [`check_envelope`] checks it, and hands its items
/// over in order, each one's JSON text as it came, in batches: a batch goes
/// once it holds `max_items` items or its items' text reaches `max_bytes`.
/// Returns the number of items. An error from `each` stops the reading and
/// is returned as it is.
pub fn split_list(
    body: &[u8],
    max_items: usize,
    max_bytes: usize,
    mut each: impl FnMut(Vec<String>) -> Result<(), String>,
) -> Result<usize, String> {
    let mut batch = Vec::new();
    let mut bytes = 0;
    let items = walk_list(body, |item| {
        batch.push(item.get().to_owned());
        bytes += item.get().len();
        if batch.len() >= max_items || bytes >= max_bytes {
            bytes = 0;
            each(std::mem::take(&mut batch))?;
        }
        Ok(())
    })?;
    if !batch.is_empty() {
        each(batch)?;
    }
    Ok(items)
}

/// The walk both share: `on_item` sees each item, borrowed from the body.
fn walk_list<'de>(
    body: &'de [u8],
    mut on_item: impl FnMut(&'de RawValue) -> Result<(), String>,
) -> Result<usize, String> {
    // A derived struct also accepts a JSON array as its fields in order.
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        None => return Err("the body is empty".to_owned()),
        Some(b'{') => {}
        Some(_) if serde_json::from_slice::<IgnoredAny>(body).is_ok() => {
            return Err("the body is JSON but not an object with an `items` array".to_owned());
        }
        Some(_) => return Err("the body is not JSON".to_owned()),
    }
    let mut stopped = None;
    let mut de = serde_json::Deserializer::from_slice(body);
    let envelope = ListEnvelope {
        on_item: &mut on_item,
        stopped: &mut stopped,
    }
    .deserialize(&mut de)
    .and_then(|envelope| de.end().map(|()| envelope));
    if let Some(reason) = stopped {
        return Err(reason);
    }
    let envelope = envelope.map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Eof => format!("the body is cut short ({e})"),
            Category::Syntax | Category::Io => format!("the body is not JSON ({e})"),
            Category::Data => format!("the body is not a list {{\"items\": [...]}} ({e})"),
        }
    })?;
    let items = envelope.items;
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

/// What the walk found besides the items.
struct Envelope {
    items: usize,
    count: Option<Value>,
    total: Option<Value>,
}

/// Reads the envelope object, handing each item of `items` to `on_item`.
/// An error of `on_item` goes to `stopped` (serde's errors carry no value).
struct ListEnvelope<'f, F> {
    on_item: &'f mut F,
    stopped: &'f mut Option<String>,
}

impl<'de, F: FnMut(&'de RawValue) -> Result<(), String>> DeserializeSeed<'de>
    for ListEnvelope<'_, F>
{
    type Value = Envelope;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Envelope, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, F: FnMut(&'de RawValue) -> Result<(), String>> Visitor<'de> for ListEnvelope<'_, F> {
    type Value = Envelope;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list {\"items\": [...]}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Envelope, A::Error> {
        let (mut items, mut count, mut total) = (None, None, None);
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match &*key {
                "items" if items.is_some() => return Err(A::Error::duplicate_field("items")),
                "items" => {
                    items = Some(map.next_value_seed(Items {
                        on_item: &mut *self.on_item,
                        stopped: &mut *self.stopped,
                    })?);
                }
                "count" => count = Some(map.next_value()?),
                "total" => total = Some(map.next_value()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Envelope {
            items: items.ok_or_else(|| A::Error::missing_field("items"))?,
            count,
            total,
        })
    }
}

/// The `items` array.
struct Items<'f, F> {
    on_item: &'f mut F,
    stopped: &'f mut Option<String>,
}

impl<'de, F: FnMut(&'de RawValue) -> Result<(), String>> DeserializeSeed<'de> for Items<'_, F> {
    type Value = usize;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<usize, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, F: FnMut(&'de RawValue) -> Result<(), String>> Visitor<'de> for Items<'_, F> {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an `items` array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
        let mut n = 0;
        while let Some(item) = seq.next_element::<&'de RawValue>()? {
            n += 1;
            if let Err(reason) = (self.on_item)(item) {
                *self.stopped = Some(reason);
                return Err(A::Error::custom("stopped"));
            }
        }
        Ok(n)
    }
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

    /// Splits `body` with batches of `max_items` items or `max_bytes` bytes.
    fn split(body: &str, max_items: usize, max_bytes: usize) -> Result<Vec<Vec<String>>, String> {
        let mut batches = Vec::new();
        let count = split_list(body.as_bytes(), max_items, max_bytes, |batch| {
            batches.push(batch);
            Ok(())
        })?;
        assert_eq!(count, batches.iter().map(Vec::len).sum::<usize>());
        Ok(batches)
    }

    #[test]
    fn items_come_out_as_they_came_in_batches() {
        // Whitespace, escapes, a multi-byte character, nested values and
        // number text all kept; `count` and unknown members skipped.
        let body = r#" { "count": 3, "x": {"items": 1},
            "items": [ {"a": "\"é\u00e9\\", "n": 1.50},[1, {"b":null}],"ñandú"] } "#;
        assert_eq!(
            split(body, 2, usize::MAX).unwrap(),
            vec![
                vec![
                    r#"{"a": "\"é\u00e9\\", "n": 1.50}"#.to_owned(),
                    r#"[1, {"b":null}]"#.to_owned()
                ],
                vec![r#""ñandú""#.to_owned()],
            ]
        );
        // A batch goes once its items reach `max_bytes` (10 here): the
        // first item alone (10 bytes of text), then three (3 + 3 + 14).
        let body = r#"{"items":["aaaaaaaa","b","c","dddddddddddd","e"]}"#;
        let sizes: Vec<usize> = split(body, 1000, 10)
            .unwrap()
            .iter()
            .map(Vec::len)
            .collect();
        assert_eq!(sizes, vec![1, 3, 1]);
        assert_eq!(
            split(r#"{"items":[]}"#, 10, 10).unwrap(),
            Vec::<Vec<String>>::new()
        );
    }

    #[test]
    fn a_split_refuses_what_the_check_refuses_with_the_same_words() {
        for body in [
            r#"{"items":[1,2"#,
            r#"{"items":[1,{"a":"é"#,
            "<html>",
            "",
            "[[1,2]]",
            r#"{"data":[]}"#,
            r#"{"items":{}}"#,
            r#"{"items":[1],"count":2}"#,
            r#"{"items":[1],"items":[2]}"#,
            r#"{"items":[1]} x"#,
        ] {
            let checked = check_envelope(body.as_bytes()).unwrap_err();
            assert_eq!(split(body, 1, 1).unwrap_err(), checked, "{body}");
        }
        // A body cut anywhere is refused, whatever was handed over before.
        let body = r#"{"items":[{"id":1,"s":"a\"é"},{"id":22.5e1}],"total":2}"#;
        assert_eq!(split(body, 1, 1).unwrap().len(), 2);
        for end in 0..body.len() {
            let Some(cut) = body.get(..end) else { continue };
            assert!(split(cut, 1, 1).is_err(), "{cut}");
        }
    }

    #[test]
    fn an_error_of_the_taker_stops_the_split() {
        let mut calls = 0;
        let result = split_list(br#"{"items":[1,2,3]}"#, 1, usize::MAX, |_| {
            calls += 1;
            Err("the transform stopped".to_owned())
        });
        assert_eq!(result, Err("the transform stopped".to_owned()));
        assert_eq!(calls, 1);
    }
}
