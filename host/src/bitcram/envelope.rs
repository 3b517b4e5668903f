//! The check every list body passes before the transform sees it, and the
//! split of a list into its items for plugins that take items; for a whole
//! body or one arriving through a reader.

use std::borrow::Cow;
use std::fmt;
use std::io::{BufRead as _, BufReader, Read};
use std::marker::PhantomData;

use serde::Deserialize;
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
pub fn check_envelope(body: &[u8]) -> Result<usize, String> {
    walk_slice::<&RawValue>(body, |_| Ok(()))
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
    each: impl FnMut(Vec<String>) -> Result<(), String>,
) -> Result<usize, String> {
    let mut batcher = Batcher::new(max_items, max_bytes, each);
    let items = walk_slice(body, |item: &RawValue| batcher.push(item.get().to_owned()))?;
    batcher.flush()?;
    Ok(items)
}

/// Reads a list body arriving through `reader` as [`split_list`] reads a
/// whole one, with the same words for the same faults. An error of the
/// reader reads as [`SplitError::Read`], for the caller to name.
pub fn split_reader(
    reader: impl Read,
    max_items: usize,
    max_bytes: usize,
    each: impl FnMut(Vec<String>) -> Result<(), String>,
) -> Result<usize, SplitError> {
    let mut batcher = Batcher::new(max_items, max_bytes, each);
    let items = walk_reader(reader, |item: Box<RawValue>| {
        batcher.push(String::from(Box::<str>::from(item)))
    })?;
    batcher.flush().map_err(SplitError::Malformed)?;
    Ok(items)
}

/// Checks a list body arriving through `reader` as [`check_envelope`]
/// checks a whole one, holding none of it; returns the number of items.
pub fn check_reader(reader: impl Read) -> Result<usize, SplitError> {
    walk_reader(reader, |_: IgnoredAny| Ok(()))
}

/// The walk of a body arriving through `reader`: `on_item` sees each item.
fn walk_reader<T: for<'de> Deserialize<'de>>(
    reader: impl Read,
    on_item: impl FnMut(T) -> Result<(), String>,
) -> Result<usize, SplitError> {
    let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, reader);
    let read_error = |e: std::io::Error| SplitError::Read(e.to_string());
    // The first byte that is not whitespace decides, as for a whole body.
    let first = loop {
        let buffer = reader.fill_buf().map_err(read_error)?;
        if buffer.is_empty() {
            return Err(SplitError::Malformed("the body is empty".to_owned()));
        }
        match buffer.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(at) => {
                let first = buffer[at];
                reader.consume(at);
                break first;
            }
            None => {
                let all = buffer.len();
                reader.consume(all);
            }
        }
    };
    if first != b'{' {
        // Not a list: an error page, usually small. Read whole, it gets the
        // words a whole body would.
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).map_err(read_error)?;
        return walk_slice::<&RawValue>(&rest, |_| Ok(())).map_err(SplitError::Malformed);
    }
    let mut de = serde_json::Deserializer::from_reader(reader);
    walk(&mut de, on_item).map_err(|fault| match fault {
        Fault::Io(message) => SplitError::Read(message),
        Fault::Malformed(reason) => SplitError::Malformed(reason),
    })
}

/// Why [`split_reader`] stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SplitError {
    /// The body is not a complete list (or the taker stopped): why.
    Malformed(String),
    /// The reader failed: its message.
    Read(String),
}

/// How much of a body in chunks is read ahead of the parser.
const READ_BUFFER_BYTES: usize = 64 << 10;

/// Gathers items into batches of at most `max_items` items, or fewer once
/// their text reaches `max_bytes`, for `each`.
struct Batcher<F> {
    batch: Vec<String>,
    bytes: usize,
    max_items: usize,
    max_bytes: usize,
    each: F,
}

impl<F: FnMut(Vec<String>) -> Result<(), String>> Batcher<F> {
    fn new(max_items: usize, max_bytes: usize, each: F) -> Self {
        Self {
            batch: Vec::new(),
            bytes: 0,
            max_items,
            max_bytes,
            each,
        }
    }

    fn push(&mut self, item: String) -> Result<(), String> {
        self.bytes += item.len();
        self.batch.push(item);
        if self.batch.len() >= self.max_items || self.bytes >= self.max_bytes {
            self.bytes = 0;
            (self.each)(std::mem::take(&mut self.batch))?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), String> {
        if self.batch.is_empty() {
            return Ok(());
        }
        (self.each)(std::mem::take(&mut self.batch))
    }
}

/// The walk of a whole body: `on_item` sees each item, borrowed from it
/// (`&RawValue`) or copied (`Box<RawValue>`).
fn walk_slice<'de, T: Deserialize<'de>>(
    body: &'de [u8],
    on_item: impl FnMut(T) -> Result<(), String>,
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
    let mut de = serde_json::Deserializer::from_slice(body);
    walk(&mut de, on_item).map_err(|fault| match fault {
        Fault::Io(message) | Fault::Malformed(message) => message,
    })
}

/// Why [`walk`] stopped.
enum Fault {
    /// The reader under the parser failed: its message.
    Io(String),
    Malformed(String),
}

/// The walk every list takes, once its first byte is known to open an
/// object: the envelope read, each item handed to `on_item`, the counts
/// compared.
fn walk<'de, R: serde_json::de::Read<'de>, T: Deserialize<'de>>(
    de: &mut serde_json::Deserializer<R>,
    mut on_item: impl FnMut(T) -> Result<(), String>,
) -> Result<usize, Fault> {
    let mut stopped = None;
    let envelope = ListEnvelope {
        on_item: &mut on_item,
        stopped: &mut stopped,
        item: PhantomData,
    }
    .deserialize(&mut *de)
    .and_then(|envelope| de.end().map(|()| envelope));
    if let Some(reason) = stopped {
        return Err(Fault::Malformed(reason));
    }
    let envelope = envelope.map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Io => Fault::Io(e.to_string()),
            Category::Eof => Fault::Malformed(format!("the body is cut short ({e})")),
            Category::Syntax => Fault::Malformed(format!("the body is not JSON ({e})")),
            Category::Data => {
                Fault::Malformed(format!("the body is not a list {{\"items\": [...]}} ({e})"))
            }
        }
    })?;
    let items = envelope.items;
    for (field, value) in [("count", &envelope.count), ("total", &envelope.total)] {
        if let Some(value) = value
            && reported_len(value).is_some_and(|reported| reported > items as f64)
        {
            return Err(Fault::Malformed(format!(
                "the response reports {field} {value} but carries {items} items; a partial list \
                 is refused"
            )));
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
struct ListEnvelope<'f, F, T> {
    on_item: &'f mut F,
    stopped: &'f mut Option<String>,
    item: PhantomData<T>,
}

impl<'de, T: Deserialize<'de>, F: FnMut(T) -> Result<(), String>> DeserializeSeed<'de>
    for ListEnvelope<'_, F, T>
{
    type Value = Envelope;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Envelope, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, T: Deserialize<'de>, F: FnMut(T) -> Result<(), String>> Visitor<'de>
    for ListEnvelope<'_, F, T>
{
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
                        item: PhantomData,
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
struct Items<'f, F, T> {
    on_item: &'f mut F,
    stopped: &'f mut Option<String>,
    item: PhantomData<T>,
}

impl<'de, T: Deserialize<'de>, F: FnMut(T) -> Result<(), String>> DeserializeSeed<'de>
    for Items<'_, F, T>
{
    type Value = usize;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<usize, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, T: Deserialize<'de>, F: FnMut(T) -> Result<(), String>> Visitor<'de> for Items<'_, F, T> {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an `items` array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
        let mut n = 0;
        while let Some(item) = seq.next_element::<T>()? {
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

    /// Bodies that are not complete lists, one fault each.
    const NOT_LISTS: [&str; 11] = [
        r#"{"items":[1,2"#,
        r#"{"items":[1,{"a":"é"#,
        "<html>",
        "",
        "  \n ",
        "[[1,2]]",
        r#"{"data":[]}"#,
        r#"{"items":{}}"#,
        r#"{"items":[1],"count":2}"#,
        r#"{"items":[1],"items":[2]}"#,
        r#"{"items":[1]} x"#,
    ];

    #[test]
    fn a_split_refuses_what_the_check_refuses_with_the_same_words() {
        for body in NOT_LISTS {
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

    /// Reads `body` in pieces of `piece` bytes, the last one shorter: a
    /// piece may end anywhere, inside a string, an escape, a number or a
    /// multi-byte character.
    struct Pieces<'a> {
        body: &'a [u8],
        piece: usize,
    }

    impl Read for Pieces<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.piece.min(buf.len()).min(self.body.len());
            buf[..n].copy_from_slice(&self.body[..n]);
            self.body = &self.body[n..];
            Ok(n)
        }
    }

    fn split_pieces(
        body: &str,
        piece: usize,
        max_items: usize,
    ) -> Result<Vec<Vec<String>>, SplitError> {
        let mut batches = Vec::new();
        let reader = Pieces {
            body: body.as_bytes(),
            piece,
        };
        split_reader(reader, max_items, usize::MAX, |batch| {
            batches.push(batch);
            Ok(())
        })?;
        Ok(batches)
    }

    #[test]
    fn a_body_read_in_pieces_splits_as_the_whole_body_does_wherever_the_pieces_end() {
        let body = r#" { "count": 3, "x": {"items": 1},
            "items": [ {"a": "\"é\u00e9\\", "n": -1.50e+3},[1, {"b":null}],"ñandú"] } "#;
        let whole = split(body, 2, usize::MAX).unwrap();
        for piece in 1..=body.len() {
            assert_eq!(
                split_pieces(body, piece, 2).unwrap(),
                whole,
                "pieces of {piece}"
            );
        }
    }

    #[test]
    fn a_body_read_in_pieces_is_refused_with_the_words_of_a_whole_one() {
        for body in NOT_LISTS {
            // The same words; serde_json counts the column of a reader's
            // error one byte further on.
            let words = |reason: &str| reason.split(" at line ").next().unwrap().to_owned();
            let whole = split(body, 1, 1).unwrap_err();
            for piece in [1, 3, 64 << 10] {
                let SplitError::Malformed(reason) = split_pieces(body, piece, 1).unwrap_err()
                else {
                    panic!("{body:?} in pieces of {piece}: not malformed");
                };
                assert_eq!(
                    words(&reason),
                    words(&whole),
                    "{body:?} in pieces of {piece}"
                );
            }
        }
        // Cut anywhere, in pieces of any size, a body is refused.
        let body = r#"{"items":[{"id":1,"s":"a\"é"},{"id":22.5e1}],"total":2}"#;
        for end in 0..body.len() {
            let Some(cut) = body.get(..end) else { continue };
            for piece in [1, 2, 7] {
                assert!(
                    matches!(split_pieces(cut, piece, 1), Err(SplitError::Malformed(_))),
                    "{cut}"
                );
            }
        }
    }

    #[test]
    fn a_failing_reader_is_a_read_error_not_a_malformed_body() {
        struct Failing(usize);
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let head = br#"{"items":[1,"#;
                if self.0 < head.len() {
                    buf[0] = head[self.0];
                    self.0 += 1;
                    return Ok(1);
                }
                Err(std::io::Error::other("the connection was reset"))
            }
        }
        match split_reader(Failing(0), 1, 1, |_| Ok(())) {
            Err(SplitError::Read(message)) => {
                assert!(message.starts_with("the connection was reset"), "{message}")
            }
            other => panic!("{other:?}"),
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
