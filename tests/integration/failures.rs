//! Failed runs change nothing, whatever fails: a plugin that traps in a real
//! sync, a damaged snapshot, a price list cut short after rows were written,
//! a failing statement on the SQLite sink; and
//! after each, the rows, their `updated_at` and the state record of diff
//! mode's shortcut are as they were. Also: a snapshot of several pages.

use std::process::Output;

use crate::support::db::TestDb;
use crate::support::sync_run::{error_line, seeded, snapshot, sync};
use crate::support::{self};

/// The state record of the target table, as text.
async fn state(db: &TestDb) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT CAST(CONCAT_WS('|', target_table, input_sha256, table_digest, synced_at) AS CHAR) \
         FROM bitcram_sync_state ORDER BY target_table",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

/// A seeded database with `db init`'s state table and one committed diff
/// run recorded in it.
async fn seeded_with_state(ids: &[u64]) -> TestDb {
    let (db, _) = seeded(ids).await;
    let init = support::bin()
        .args(["db", "init", "--database-url", &db.url()])
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let dir = tempfile::tempdir().unwrap();
    snapshot(dir.path(), ids, &[]);
    let out = sync(&db, dir.path(), &["--mode", "diff"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(state(&db).await.len(), 1, "the run was recorded");
    db
}

/// Everything a failed run must leave as it was.
async fn everything(
    db: &TestDb,
) -> (
    Vec<(String, String, i64)>,
    Vec<(String, String, i64)>,
    Vec<(String, String)>,
    Vec<String>,
) {
    (
        db.rows("raw_item_data").await,
        db.rows("mirror").await,
        db.updated_at().await,
        state(db).await,
    )
}

#[tokio::test]
async fn a_plugin_that_traps_in_a_real_sync_writes_nothing() {
    let db = seeded_with_state(&[1, 2, 3]).await;
    let before = everything(&db).await;
    let dir = tempfile::tempdir().unwrap();
    snapshot(dir.path(), &[1, 2, 3, 4], &[]);
    for mode in ["replace", "diff"] {
        let plugin = support::test_plugin("panic");
        let out = sync(
            &db,
            dir.path(),
            &["--mode", mode, "--plugin", plugin.to_str().unwrap()],
        );
        assert_eq!(out.status.code(), Some(1), "{mode}");
        let error = error_line(&out);
        assert!(
            error.contains("plugin test-panic 0.0.0 (sha256 ") && error.contains("it crashed"),
            "{mode}: {error}"
        );
        assert_eq!(everything(&db).await, before, "{mode}");
    }
    db.drop_now().await;
}

#[tokio::test]
async fn a_failed_post_load_statement_leaves_rows_stamps_and_state_as_they_were() {
    let db = seeded_with_state(&[1, 2, 3]).await;
    let before = everything(&db).await;
    let dir = tempfile::tempdir().unwrap();
    snapshot(dir.path(), &[1, 2, 3, 4], &[(2, 7.0)]);
    for mode in ["replace", "diff"] {
        let out = support::bin()
            .args(["sync", "--from"])
            .arg(dir.path())
            .args(["--database-url", &db.url(), "--mode", mode])
            .args(["--post-load-sql", "CALL failing_mirror()"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{mode}");
        assert!(
            error_line(&out).contains("post-load statement 1 (`CALL failing_mirror()`) failed")
        );
        assert_eq!(everything(&db).await, before, "{mode}");
    }
    db.drop_now().await;
}

#[tokio::test]
async fn sync_from_a_damaged_snapshot_changes_nothing() {
    let (db, old) = seeded(&[1, 2]).await;
    let stamps = db.updated_at().await;
    let dir = tempfile::tempdir().unwrap();
    snapshot(dir.path(), &[1, 2, 3], &[]);
    std::fs::write(
        dir.path().join("price-list.0.json"),
        br#"{"items":[{"product_id":9}]}"#,
    )
    .unwrap();
    let out = sync(&db, dir.path(), &[]);
    assert_eq!(out.status.code(), Some(1));
    let error = error_line(&out);
    assert!(
        error.contains("price-list.0.json") && error.contains("damaged"),
        "{error}"
    );
    assert_eq!(db.rows("raw_item_data").await, old);
    assert_eq!(db.rows("mirror").await, old);
    assert_eq!(db.updated_at().await, stamps);
    db.drop_now().await;
}

/// A price list of `count` items, cut short after the last one.
fn cut_price_list(count: u64) -> String {
    let items: Vec<String> = (1..=count)
        .map(|id| format!(r#"{{"product_id":{id},"product_name":"Producto {id}"}}"#))
        .collect();
    format!(r#"{{"items":[{}"#, items.join(","))
}

#[tokio::test]
async fn a_price_list_cut_short_after_rows_were_written_changes_nothing() {
    let db = seeded_with_state(&[1, 2, 3]).await;
    let before = everything(&db).await;
    // 2,500 items, then the body ends: the default component (item by item)
    // has made and the load has written 2,000 rows when the cut is found;
    // a transform that takes whole bodies (the Python example) refuses the
    // page at once.
    let dir = tempfile::tempdir().unwrap();
    support::write_snapshot(dir.path(), &[r#"{"items":[]}"#], &[&cut_price_list(2500)]);
    let python = support::example_plugin("python-transform");
    let host_words = format!(
        "the price-list body, page 0, from {}, is not a complete list: the body is cut short \
         (EOF while parsing a list at line 1 column",
        dir.path().join("price-list.0.json").display()
    );
    for (plugin, expected) in [
        (None, host_words.as_str()),
        (
            Some(&python),
            "malformed body in the price-list body, page 0: ",
        ),
    ] {
        for mode in ["replace", "diff"] {
            let mut args = vec!["--mode", mode, "--allow-shrink"];
            if let Some(plugin) = plugin {
                args.extend(["--plugin", plugin.to_str().unwrap()]);
            }
            let out = sync(&db, dir.path(), &args);
            assert_eq!(out.status.code(), Some(1), "{mode}");
            let error = error_line(&out);
            assert!(error.contains(expected), "{mode}: {error}");
            assert_eq!(everything(&db).await, before, "{mode}");
        }
    }
    db.drop_now().await;
}

#[tokio::test]
async fn a_snapshot_of_several_pages_loads_every_page() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    support::write_snapshot(
        dir.path(),
        &[
            r#"{"items":[{"product_id":1,"product_balance":3}]}"#,
            r#"{"items":[{"product_id":4,"product_balance":6}]}"#,
        ],
        &[
            r#"{"items":[{"product_id":1,"n":"a"},{"product_id":2,"n":"b"}]}"#,
            r#"{"items":[{"product_id":3,"n":"c"}]}"#,
            r#"{"items":[{"product_id":4,"n":"d"}]}"#,
        ],
    );
    let out = sync(&db, dir.path(), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        db.rows("raw_item_data").await,
        [
            ("1", r#"{"n":"a"}"#, 3),
            ("2", r#"{"n":"b"}"#, 0),
            ("3", r#"{"n":"c"}"#, 0),
            ("4", r#"{"n":"d"}"#, 6),
        ]
        .map(|(id, data, stock)| (id.to_owned(), data.to_owned(), stock))
    );
    db.drop_now().await;
}

fn sqlite_sync(dir: &std::path::Path, url: &str, post_load: &str) -> Output {
    support::bin()
        .args(["sync", "--from"])
        .arg(dir)
        .args(["--database-url", url, "--post-load-sql", post_load])
        .output()
        .unwrap()
}

#[tokio::test]
async fn the_sqlite_sink_rolls_back_a_failed_run() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("local.db").display());
    let init = support::bin()
        .args(["db", "init", "--database-url", &url])
        .output()
        .unwrap();
    assert!(init.status.success());
    let first = dir.path().join("first");
    snapshot(&first, &[1, 2], &[]);
    assert!(sqlite_sync(&first, &url, "").status.success());

    let read = || async {
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        let rows: Vec<(String, String, i64, String)> =
            sqlx::query_as("SELECT id, data, stock, updated_at FROM raw_item_data ORDER BY id")
                .fetch_all(&pool)
                .await
                .unwrap();
        let state: Vec<(String, String)> =
            sqlx::query_as("SELECT input_sha256, table_digest FROM bitcram_sync_state")
                .fetch_all(&pool)
                .await
                .unwrap();
        pool.close().await;
        (rows, state)
    };
    let before = read().await;
    assert_eq!(before.0.len(), 2);

    let second = dir.path().join("second");
    snapshot(&second, &[1, 2, 3], &[(1, 5.0)]);
    let out = sqlite_sync(&second, &url, "INSERT INTO no_such_table VALUES (1)");
    assert_eq!(out.status.code(), Some(1));
    let error = error_line(&out);
    assert!(
        error.contains("post-load statement 1 (`INSERT INTO no_such_table VALUES (1)`) failed")
            && error.contains("no such table"),
        "{error}"
    );
    assert_eq!(
        read().await,
        before,
        "the rows, their stamps and the state record"
    );
}
