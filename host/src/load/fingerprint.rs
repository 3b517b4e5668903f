//! A row's fingerprint: how diff mode tells a changed row from an
//! unchanged one, and what the state record's table digest sums.

use sha2::{Digest, Sha256};

use super::table::Dialect;

/// The first 16 bytes of a row's sha256 of `stock` and `data`.
pub(super) type Fingerprint = [u8; 16];

/// `stock` and `data` hashed. Where the server keeps `data` as written, its
/// text is hashed as is; MySQL returns JSON normalized (key order, spacing),
/// so there both sides are hashed in a canonical form.
pub(super) fn fingerprint(stock: i64, data: &str, dialect: Dialect) -> Fingerprint {
    let mut hasher = Sha256::new();
    hasher.update(stock.to_le_bytes());
    if dialect.keeps_json_text() {
        hasher.update(data.as_bytes());
    } else {
        match serde_json::from_str::<serde_json::Value>(data) {
            Ok(value) => hash_canonical(&value, &mut hasher),
            Err(_) => hasher.update(data.as_bytes()),
        }
    }
    let digest = hasher.finalize();
    digest[..16].try_into().expect("sha256 has 32 bytes")
}

fn hash_canonical(value: &serde_json::Value, hasher: &mut Sha256) {
    use serde_json::Value;
    match value {
        Value::Null => hasher.update(b"n"),
        Value::Bool(b) => hasher.update(if *b { b"t" } else { b"f" }),
        Value::Number(n) => {
            // MySQL keeps integers as integers and stores the rest as doubles.
            match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => hasher.update(format!("i{i}")),
                (None, Some(u)) => hasher.update(format!("i{u}")),
                _ => hasher.update(format!("f{}", n.as_f64().unwrap_or(f64::NAN))),
            }
        }
        Value::String(s) => {
            hasher.update(b"s");
            hasher.update((s.len() as u64).to_le_bytes());
            hasher.update(s.as_bytes());
        }
        Value::Array(items) => {
            hasher.update(format!("a{}", items.len()));
            for item in items {
                hash_canonical(item, hasher);
            }
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            hasher.update(format!("o{}", keys.len()));
            for key in keys {
                hasher.update((key.len() as u64).to_le_bytes());
                hasher.update(key.as_bytes());
                hash_canonical(&map[key.as_str()], hasher);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_fingerprints_ignore_key_order_and_spacing() {
        let a = fingerprint(3, r#"{"b":1,"a":[1.5,null,"x y"]}"#, Dialect::MySql);
        let b = fingerprint(3, r#"{"a": [1.5, null, "x y"], "b": 1}"#, Dialect::MySql);
        assert_eq!(a, b);
        assert_ne!(
            a,
            fingerprint(4, r#"{"b":1,"a":[1.5,null,"x y"]}"#, Dialect::MySql)
        );
        assert_ne!(
            a,
            fingerprint(3, r#"{"b":2,"a":[1.5,null,"x y"]}"#, Dialect::MySql)
        );
    }

    #[test]
    fn text_fingerprints_compare_bytes() {
        let a = fingerprint(3, r#"{"b":1}"#, Dialect::MariaDb);
        assert_eq!(a, fingerprint(3, r#"{"b":1}"#, Dialect::Sqlite));
        assert_ne!(a, fingerprint(3, r#"{"b": 1}"#, Dialect::MariaDb));
    }
}
