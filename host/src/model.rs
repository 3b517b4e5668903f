//! What every stage of a run shares: which API body a page answers, the
//! rows, the run's context, body digests, the source counts, and the two
//! ways a time is written. A leaf: it imports no other module of the crate.

use serde::{Deserialize, Serialize};

/// Which Bitcram API call a body answers. Its [`name`](Source::name) is the
/// same everywhere: snapshot file names and manifests, the input key, logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// `GET /api/checkouts/index?where=...`: the checkout found by its number.
    Checkout,
    /// `GET /api/stock_items/index?...`: the warehouse's stock.
    Stock,
    /// `GET /api/checkouts/index/{id}/price_list`: the catalog.
    PriceList,
}

impl Source {
    /// Every source, in contract order: the order a transform takes them.
    pub const ALL: [Source; 3] = [Source::Checkout, Source::Stock, Source::PriceList];

    /// `checkout`, `stock` or `price-list`.
    pub fn name(self) -> &'static str {
        match self {
            Source::Checkout => "checkout",
            Source::Stock => "stock",
            Source::PriceList => "price-list",
        }
    }
}

/// One row of the target table, as the transform made it; the load adds
/// `updated_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The product id as text, 1 to 64 characters, unique in a run.
    pub id: String,
    /// The product's attributes, one compact JSON object.
    pub data: String,
    /// The warehouse balance, whole units.
    pub stock: i64,
}

/// What the transform is told about the run before it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunContext {
    pub checkout_number: String,
    pub checkout_id: u64,
    pub warehouse_id: u64,
    /// The sync time, as [`format_synced_at`] writes it.
    pub synced_at: String,
}

/// Everything about a run's input except its bodies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunInfo {
    pub created_at: String,
    pub bitcram_url: String,
    pub checkout_number: String,
    pub checkout_id: u64,
    pub warehouse_id: u64,
}

impl RunInfo {
    /// The transform's context, stamped with `synced_at`.
    pub fn run_context(&self, synced_at: String) -> RunContext {
        RunContext {
            checkout_number: self.checkout_number.clone(),
            checkout_id: self.checkout_id,
            warehouse_id: self.warehouse_id,
            synced_at,
        }
    }
}

/// One body of a run, as the input key and a snapshot's manifest see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyDigest {
    pub source: Source,
    /// The page within its source, from 0.
    pub page: u32,
    /// Hex sha256 of the body.
    pub sha256: String,
}

/// How much of each source a run read, as its transform counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SourceCounts {
    /// Items in the price list (the catalog).
    pub price_list_items: u64,
    /// Items in the warehouse's stock.
    pub stock_items: u64,
    /// Stock items for products not in the price list.
    pub dropped_stock_items: u64,
}

/// A time as the WIT `run-context`, logs and reports write it:
/// `2026-11-28T09:23:00.123456Z`.
pub fn format_synced_at(at: time::OffsetDateTime) -> String {
    format_utc(
        at,
        time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
        ),
    )
}

/// A time as MySQL's `DATETIME(6)` and SQLite's text column take it:
/// `2026-11-28 09:23:00.123456`.
pub fn format_sql_datetime(at: time::OffsetDateTime) -> String {
    format_utc(
        at,
        time::macros::format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second].[subsecond digits:6]"
        ),
    )
}

fn format_utc(
    at: time::OffsetDateTime,
    format: &[time::format_description::FormatItem<'_>],
) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(format)
        .expect("a UTC time always formats")
}

/// A duration as the settings write it: `1500 ms`, `30 s`, `5 min`.
pub fn format_duration(duration: std::time::Duration) -> String {
    let ms = duration.as_millis();
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms.is_multiple_of(60_000) {
        format!("{} min", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{:.1} s", duration.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_time_formats_are_utc_with_microseconds() {
        let at = time::macros::datetime!(2026-11-28 10:23:00.1234567 +01:00);
        assert_eq!(format_synced_at(at), "2026-11-28T09:23:00.123456Z");
        assert_eq!(format_sql_datetime(at), "2026-11-28 09:23:00.123456");
    }

    #[test]
    fn durations_read_as_the_settings_write_them() {
        use std::time::Duration;
        assert_eq!(format_duration(Duration::from_millis(1)), "1 ms");
        assert_eq!(format_duration(Duration::from_secs(90)), "90 s");
        assert_eq!(format_duration(Duration::from_secs(300)), "5 min");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5 s");
    }

    #[test]
    fn sources_are_named_as_in_snapshots() {
        assert_eq!(
            Source::ALL.map(Source::name),
            ["checkout", "stock", "price-list"]
        );
        assert_eq!(
            serde_json::to_string(&Source::PriceList).unwrap(),
            "\"price-list\""
        );
    }
}
