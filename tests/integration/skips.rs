//! What a run may skip, and what it may not. A diff run's post-load
//! statements run after any one kind of change (an insert, an update or a
//! delete alone) and are skipped, and reported so, only when nothing
//! changed; a replace run rewrites the table even on the last run's input.

use std::path::Path;

use crate::support::db::TestDb;
use crate::support::sync_run::{assert_success, report, snapshot, sync};
use crate::support::{self};

/// A diff run on a catalog of `ids` and `balances`, with the mirror
/// procedure as post-load, after the mirror lost product 1 behind the job's
/// back (only the procedure brings it back). Returns the run's report.
async fn diff_run(db: &TestDb, ids: &[u64], balances: &[(u64, f64)]) -> serde_json::Value {
    sqlx::query("DELETE FROM mirror WHERE id = '1'")
        .execute(&db.pool)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    snapshot(dir.path(), ids, balances);
    let report_file = dir.path().join("report.json");
    assert_success(&sync(
        db,
        dir.path(),
        &["--mode", "diff", "--report", report_file.to_str().unwrap()],
    ));
    report(&report_file)
}

fn written(r: &serde_json::Value) -> serde_json::Value {
    serde_json::json!([
        r["rows"]["inserted"],
        r["rows"]["updated"],
        r["rows"]["deleted"]
    ])
}

#[tokio::test]
async fn a_diff_run_runs_the_post_load_statements_after_an_insert_an_update_or_a_delete_alone() {
    let db = TestDb::new().await;
    let ids: Vec<u64> = (1..=20).collect();
    let more: Vec<u64> = (1..=21).collect();
    diff_run(&db, &ids, &[]).await;
    for (what, ids, balances, counts) in [
        ("an insert", &more, vec![], [1, 0, 0]),
        ("an update", &more, vec![(5, 3.0)], [0, 1, 0]),
        ("a delete", &ids, vec![(5, 3.0)], [0, 0, 1]),
    ] {
        let r = diff_run(&db, ids, &balances).await;
        assert_eq!(written(&r), serde_json::json!(counts), "{what}: {r}");
        assert_eq!(r["rows"]["post_load_statements"], 1, "{what}: {r}");
        assert_eq!(r["rows"]["post_load_skipped"], false, "{what}: {r}");
        assert_eq!(
            db.rows("mirror").await,
            db.rows("raw_item_data").await,
            "{what}: the procedure ran"
        );
    }

    // Nothing changed: the procedure is skipped, and the report says so.
    let r = diff_run(&db, &ids, &[(5, 3.0)]).await;
    assert_eq!(written(&r), serde_json::json!([0, 0, 0]), "{r}");
    assert_eq!(r["rows"]["post_load_statements"], 0, "{r}");
    assert_eq!(r["rows"]["post_load_skipped"], true, "{r}");
    assert_eq!(db.rows("mirror").await.len(), 19);

    // With no post-load statements (an empty value) there is nothing to skip.
    let dir = tempfile::tempdir().unwrap();
    snapshot(dir.path(), &ids, &[(5, 3.0)]);
    let report_file = dir.path().join("report.json");
    let out = support::bin()
        .args(["sync", "--from"])
        .arg(dir.path())
        .args(["--database-url", &db.url(), "--mode", "diff"])
        .args([
            "--post-load-sql",
            "",
            "--report",
            report_file.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_success(&out);
    let r = report(&report_file);
    assert_eq!(written(&r), serde_json::json!([0, 0, 0]), "{r}");
    assert_eq!(r["rows"]["post_load_skipped"], false, "{r}");
    db.drop_now().await;
}

#[tokio::test]
async fn a_replace_run_on_the_last_runs_input_still_rewrites_the_table() {
    let db = TestDb::new().await;
    assert_success(
        &support::bin()
            .args(["db", "init", "--database-url", &db.url()])
            .output()
            .unwrap(),
    );
    // The last run loaded an empty catalog (the shrink guard lifted), so its
    // record is of an empty table; then a row reaches the table behind the
    // job's back.
    let empty = tempfile::tempdir().unwrap();
    snapshot(empty.path(), &[], &[]);
    let reports = tempfile::tempdir().unwrap();
    let report_file = reports.path().join("report.json");
    let run = |dir: &Path| {
        assert_success(&sync(
            &db,
            dir,
            &["--allow-shrink", "--report", report_file.to_str().unwrap()],
        ));
        report(&report_file)
    };
    run(empty.path());
    sqlx::query(
        "INSERT INTO raw_item_data (id, data, stock, updated_at) VALUES ('9', '{}', 1, NOW())",
    )
    .execute(&db.pool)
    .await
    .unwrap();

    // The same input again: replace mode transforms and empties the table.
    let r = run(empty.path());
    assert_eq!(r["transform_skipped"], false, "{r}");
    assert_eq!(r["rows"]["rows_before"], 1, "{r}");
    assert!(db.rows("raw_item_data").await.is_empty());
    assert!(db.rows("mirror").await.is_empty());
    db.drop_now().await;
}
