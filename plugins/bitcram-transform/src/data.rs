//! Reading an item's fields (product ids, balances) and writing its `data`.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

/// The start of a piece of JSON, for error messages.
pub(crate) fn snippet(json: &str) -> &str {
    match json.char_indices().nth(40) {
        Some((end, _)) => &json[..end],
        None => json,
    }
}

/// A product id: a non-negative whole number, or a string of digits (its
/// canonical text is the number's decimal form).
pub(crate) fn canonical_id(value: &Value) -> Result<u64, String> {
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
pub(crate) fn parse_balance(value: &Value) -> Result<i64, String> {
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
pub(crate) fn item_data(item: &str) -> String {
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
