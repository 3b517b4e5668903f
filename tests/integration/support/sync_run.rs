//! Running `sync --from SNAPSHOT` through the binary into a test database,
//! and reading what it said.

use std::path::Path;
use std::process::Output;

use super::db::TestDb;

/// A price list of `ids` (with a name each) and a stock of `balances`.
pub fn catalog(ids: &[u64], balances: &[(u64, f64)]) -> (String, String) {
    let items: Vec<String> = ids
        .iter()
        .map(|id| format!(r#"{{"product_id":{id},"product_name":"Producto {id} – ñandú","price":{id}.5,"img":null}}"#))
        .collect();
    let stock: Vec<String> = balances
        .iter()
        .map(|(id, b)| format!(r#"{{"product_id":{id},"warehouse_id":5,"product_balance":{b}}}"#))
        .collect();
    (
        format!(r#"{{"items":[{}]}}"#, items.join(",")),
        format!(r#"{{"items":[{}]}}"#, stock.join(",")),
    )
}

pub fn snapshot(dir: &Path, ids: &[u64], balances: &[(u64, f64)]) {
    let (price_list, stock) = catalog(ids, balances);
    super::write_snapshot(dir, &[&stock], &[&price_list]);
}

/// Runs `sync --from dir` into `db` with the mirror procedure as post-load.
pub fn sync(db: &TestDb, dir: &Path, extra: &[&str]) -> Output {
    super::bin()
        .args(["sync", "--from"])
        .arg(dir)
        .args([
            "--database-url",
            &db.url(),
            "--post-load-sql",
            "CALL update_mirror()",
        ])
        .args(extra)
        .output()
        .unwrap()
}

#[track_caller]
pub fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn error_line(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(
        errors.len(),
        1,
        "exactly one error line expected:\n{stderr}"
    );
    errors[0].to_owned()
}

pub fn report(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Loads `ids` with replace mode as the "old" state.
pub async fn seeded(ids: &[u64]) -> (TestDb, Vec<(String, String, i64)>) {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    snapshot(dir.path(), ids, &[]);
    assert_success(&sync(&db, dir.path(), &[]));
    let rows = db.rows("raw_item_data").await;
    assert_eq!(rows.len(), ids.len());
    (db, rows)
}

/// Settings for driving the loader directly: raw_item_data, the shrink
/// guard lifted, synced now.
pub fn loader_settings(
    mode: bitcram_sync::load::SyncMode,
    post_load: Vec<String>,
) -> bitcram_sync::load::LoadSettings {
    bitcram_sync::load::LoadSettings {
        table: bitcram_sync::load::TableName::parse("raw_item_data").unwrap(),
        mode,
        post_load,
        post_load_when: bitcram_sync::load::PostLoadWhen::Changes,
        max_delete_percent: 100.0,
        allow_shrink: true,
        dry_run: false,
        synced_at: time::OffsetDateTime::now_utc(),
    }
}
