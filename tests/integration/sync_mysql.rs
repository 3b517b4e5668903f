//! `bitcram-sync sync --from SNAPSHOT` and `db init` through the real binary
//! against a real MariaDB, one fresh database per test: both modes, the
//! all-or-nothing transaction, the guards, the dry run.

use std::path::Path;

use crate::support::sync_run::{
    assert_success, catalog, error_line, report, seeded, snapshot, sync,
};
use crate::support::{self, db::TestDb};

#[tokio::test]
async fn replace_loads_every_row_and_column_and_runs_the_procedure() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    snapshot(dir.path(), &[1, 2, 3], &[(1, 4.9), (3, -2.5), (77, 9.0)]);
    let report_file = dir.path().join("report.json");
    let before = time::OffsetDateTime::now_utc();
    let out = sync(
        &db,
        dir.path(),
        &["--report", report_file.to_str().unwrap()],
    );
    assert_success(&out);

    let rows = db.rows("raw_item_data").await;
    let expected: Vec<(String, String, i64)> = vec![
        (
            "1".into(),
            r#"{"product_name":"Producto 1 – ñandú","price":1.5,"img":null}"#.into(),
            4,
        ),
        (
            "2".into(),
            r#"{"product_name":"Producto 2 – ñandú","price":2.5,"img":null}"#.into(),
            0,
        ),
        (
            "3".into(),
            r#"{"product_name":"Producto 3 – ñandú","price":3.5,"img":null}"#.into(),
            -2,
        ),
    ];
    assert_eq!(rows, expected);
    assert_eq!(
        db.rows("mirror").await,
        expected,
        "the post-load procedure ran"
    );

    // Every row carries the same sync time, taken at the start of this run.
    let stamps = db.updated_at().await;
    let first = &stamps[0].1;
    assert!(stamps.iter().all(|(_, t)| t == first), "{stamps:?}");
    let format = time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second].[subsecond digits:6]"
    );
    let stamp = time::PrimitiveDateTime::parse(first, &format)
        .unwrap()
        .assume_utc();
    assert!(
        stamp >= before - time::Duration::seconds(1) && stamp <= time::OffsetDateTime::now_utc()
    );

    let report = report(&report_file);
    assert_eq!(report["mode"], "replace");
    assert_eq!(report["rows"]["inserted"], 3);
    assert_eq!(report["rows"]["rows_before"], 0);
    assert_eq!(report["rows"]["post_load_statements"], 1);
    assert_eq!(report["source"]["dropped_stock_items"], 1);
    assert_eq!(report["source"]["stock_items"], 3);
    assert_eq!(report["plugin"]["name"], "bitcram-transform");
    assert_eq!(report["plugin"]["sha256"], support::default_plugin_sha256());
    for phase in [
        "secrets_ms",
        "extract_ms",
        "transform_ms",
        "load_ms",
        "post_load_ms",
        "total_ms",
    ] {
        assert!(report["phases"][phase].is_u64(), "{phase}");
    }
    db.drop_now().await;
}

#[tokio::test]
async fn diff_writes_only_what_changed_and_nothing_on_a_second_run() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let ids: Vec<u64> = (1..=20).collect();
    let balances: Vec<(u64, f64)> = ids.iter().map(|&id| (id, id as f64)).collect();
    snapshot(dir.path(), &ids, &balances);
    assert_success(&sync(&db, dir.path(), &["--mode", "diff"]));
    let first = db.updated_at().await;
    assert_eq!(first.len(), 20);

    // Product 2's stock changes, product 3's data changes, product 20 goes,
    // product 21 arrives.
    let mut ids2: Vec<u64> = (1..=19).collect();
    ids2.push(21);
    let mut balances2 = balances.clone();
    balances2[1].1 = 99.0;
    let (mut price_list, stock) = catalog(&ids2, &balances2);
    price_list = price_list.replace(r#""price":3.5"#, r#""price":3.75"#);
    let dir2 = tempfile::tempdir().unwrap();
    support::write_snapshot(dir2.path(), &[&stock], &[&price_list]);
    let report_file = dir2.path().join("report.json");
    assert_success(&sync(
        &db,
        dir2.path(),
        &["--mode", "diff", "--report", report_file.to_str().unwrap()],
    ));
    let r = report(&report_file);
    let counts = serde_json::json!([
        r["rows"]["inserted"],
        r["rows"]["updated"],
        r["rows"]["deleted"],
        r["rows"]["unchanged"]
    ]);
    assert_eq!(counts, serde_json::json!([1, 2, 1, 17]), "{r}");
    let rows = db.rows("raw_item_data").await;
    assert_eq!(rows.len(), 20);
    assert!(rows.iter().any(|(id, _, stock)| id == "2" && *stock == 99));
    assert!(
        rows.iter()
            .any(|(id, data, _)| id == "3" && data.contains("3.75"))
    );
    assert!(!rows.iter().any(|(id, _, _)| id == "20"));
    assert_eq!(db.rows("mirror").await, rows);

    // Only the touched rows got the new sync time.
    let second = db.updated_at().await;
    let old: std::collections::HashMap<_, _> = first.into_iter().collect();
    for (id, stamp) in &second {
        let touched = ["2", "3", "21"].contains(&id.as_str());
        assert_eq!(old.get(id) != Some(stamp), touched, "product {id}");
    }

    // The same source again: nothing is written.
    let report_file = dir2.path().join("report2.json");
    assert_success(&sync(
        &db,
        dir2.path(),
        &["--mode", "diff", "--report", report_file.to_str().unwrap()],
    ));
    let r = report(&report_file);
    assert_eq!(r["rows"]["unchanged"], 20, "{r}");
    for count in ["inserted", "updated", "deleted"] {
        assert_eq!(r["rows"][count], 0, "{count}: {r}");
    }
    assert_eq!(db.updated_at().await, second, "no row was rewritten");
    db.drop_now().await;
}

#[tokio::test]
async fn a_diff_run_on_the_last_runs_input_skips_the_transform_and_the_procedure() {
    let db = TestDb::new().await;
    let init = support::bin()
        .args(["db", "init", "--database-url", &db.url()])
        .output()
        .unwrap();
    assert_success(&init);
    assert!(
        String::from_utf8_lossy(&init.stdout).contains("table bitcram_sync_state created"),
        "{}",
        String::from_utf8_lossy(&init.stdout)
    );
    let dir = tempfile::tempdir().unwrap();
    let ids: Vec<u64> = (1..=20).collect();
    let balances: Vec<(u64, f64)> = ids.iter().map(|&id| (id, 2.0)).collect();
    snapshot(dir.path(), &ids, &balances);
    let report_file = dir.path().join("report.json");
    let run_mode = |snapshot: &Path, mode: &str, extra: &[&str]| {
        let _ = std::fs::remove_file(&report_file);
        let mut args = vec!["--mode", mode, "--report", report_file.to_str().unwrap()];
        args.extend_from_slice(extra);
        assert_success(&sync(&db, snapshot, &args));
        report(&report_file)
    };
    let run = |snapshot: &Path, extra: &[&str]| run_mode(snapshot, "diff", extra);
    let summary = |r: &serde_json::Value| {
        serde_json::json!({
            "skipped": r["transform_skipped"],
            "written": [r["rows"]["inserted"], r["rows"]["updated"], r["rows"]["deleted"]],
            "unchanged": r["rows"]["unchanged"],
            "post_load": r["rows"]["post_load_statements"],
            "price_list_items": r["source"]["price_list_items"],
        })
    };

    let first = run(dir.path(), &[]);
    assert_eq!(
        summary(&first),
        serde_json::json!({"skipped": false, "written": [20, 0, 0], "unchanged": 0, "post_load": 1, "price_list_items": 20})
    );
    let stamps = db.updated_at().await;
    let rows = db.rows("raw_item_data").await;
    assert_eq!(db.rows("mirror").await, rows);

    // The same input: no transform, no write, no procedure (the mirror
    // keeps a row removed behind the job's back).
    sqlx::query("DELETE FROM mirror WHERE id = '7'")
        .execute(&db.pool)
        .await
        .unwrap();
    let again = run(dir.path(), &[]);
    assert_eq!(
        summary(&again),
        serde_json::json!({"skipped": true, "written": [0, 0, 0], "unchanged": 20, "post_load": 0, "price_list_items": 20})
    );
    assert_eq!(again["rows"]["post_load_skipped"], true);
    assert_eq!(db.updated_at().await, stamps);
    assert_eq!(db.rows("mirror").await.len(), 19);

    // `--post-load-when always` runs the procedure even so.
    let always = run(dir.path(), &["--post-load-when", "always"]);
    assert_eq!(
        summary(&always),
        serde_json::json!({"skipped": true, "written": [0, 0, 0], "unchanged": 20, "post_load": 1, "price_list_items": 20})
    );
    assert_eq!(db.rows("mirror").await, rows);

    // A row edited behind the job's back: the next run transforms and
    // repairs it.
    sqlx::query("UPDATE raw_item_data SET stock = 5 WHERE id = '4'")
        .execute(&db.pool)
        .await
        .unwrap();
    let repair = run(dir.path(), &[]);
    assert_eq!(
        summary(&repair),
        serde_json::json!({"skipped": false, "written": [0, 1, 0], "unchanged": 19, "post_load": 1, "price_list_items": 20})
    );
    assert_eq!(db.rows("raw_item_data").await, rows);

    // Other bytes with the same rows (a stock row for an unknown product):
    // the transform runs and writes nothing; then that input is the last
    // run's and is skipped.
    let dir2 = tempfile::tempdir().unwrap();
    let mut balances2 = balances.clone();
    balances2.push((999, 1.0));
    snapshot(dir2.path(), &ids, &balances2);
    let other = run(dir2.path(), &[]);
    assert_eq!(
        summary(&other),
        serde_json::json!({"skipped": false, "written": [0, 0, 0], "unchanged": 20, "post_load": 0, "price_list_items": 20})
    );
    assert_eq!(other["source"]["dropped_stock_items"], 1);
    let other_again = run(dir2.path(), &[]);
    assert_eq!(other_again["transform_skipped"], true);
    assert_eq!(other_again["source"]["dropped_stock_items"], 1);

    // Replace mode always transforms.
    let replace = run_mode(dir2.path(), "replace", &[]);
    assert_eq!(replace["transform_skipped"], false);
    assert_eq!(replace["rows"]["inserted"], 20);

    // Without the state table, every diff run transforms.
    sqlx::query("DROP TABLE bitcram_sync_state")
        .execute(&db.pool)
        .await
        .unwrap();
    for _ in 0..2 {
        let r = run(dir2.path(), &[]);
        assert_eq!(r["transform_skipped"], false, "{r}");
        assert_eq!(r["rows"]["unchanged"], 20, "{r}");
    }
    db.drop_now().await;
}

#[tokio::test]
async fn a_failing_procedure_rolls_back_the_table_and_what_the_procedure_wrote() {
    let (db, old) = seeded(&[1, 2, 3, 4]).await;
    let dir = tempfile::tempdir().unwrap();
    snapshot(dir.path(), &[1, 2, 3, 4, 5], &[(1, 50.0)]);
    for mode in ["replace", "diff"] {
        let out = support::bin()
            .args(["sync", "--from"])
            .arg(dir.path())
            .args([
                "--database-url",
                &db.url(),
                "--post-load-sql",
                "CALL failing_mirror()",
                "--mode",
                mode,
            ])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{mode}");
        let error = error_line(&out);
        assert!(
            error.contains("post-load statement 1 (`CALL failing_mirror()`) failed")
                && error.contains("mirror refused the catalog"),
            "{error}"
        );
        assert_eq!(
            db.rows("raw_item_data").await,
            old,
            "{mode}: the table kept its rows"
        );
        assert_eq!(
            db.rows("mirror").await,
            old,
            "{mode}: the procedure's own writes were undone"
        );
    }
    db.drop_now().await;
}

#[tokio::test]
async fn the_shrink_guard_refuses_an_empty_catalog_and_a_large_drop() {
    let ids: Vec<u64> = (1..=20).collect();
    let (db, old) = seeded(&ids).await;

    let empty = tempfile::tempdir().unwrap();
    snapshot(empty.path(), &[], &[]);
    let out = sync(&db, empty.path(), &[]);
    assert_eq!(out.status.code(), Some(1));
    let error = error_line(&out);
    assert!(
        error.contains("the new catalog is empty") && error.contains("has 20 rows"),
        "{error}"
    );
    assert_eq!(db.rows("raw_item_data").await, old);

    // 17 of 20 products remain: 15% removed, over the default 10%.
    let smaller = tempfile::tempdir().unwrap();
    snapshot(smaller.path(), &ids[..17], &[]);
    for mode in ["replace", "diff"] {
        let out = sync(&db, smaller.path(), &["--mode", mode]);
        assert_eq!(out.status.code(), Some(1), "{mode}");
        let error = error_line(&out);
        assert!(
            error.contains("would remove 3 of the 20 rows") && error.contains("17 would remain"),
            "{error}"
        );
        assert_eq!(db.rows("raw_item_data").await, old, "{mode}");
    }
    // A higher threshold lets it through; so does --allow-shrink.
    assert_success(&sync(
        &db,
        smaller.path(),
        &["--max-delete-percent", "20", "--mode", "diff"],
    ));
    assert_eq!(db.rows("raw_item_data").await.len(), 17);
    assert_success(&sync(&db, empty.path(), &["--allow-shrink"]));
    assert!(db.rows("raw_item_data").await.is_empty());
    assert!(db.rows("mirror").await.is_empty());
    db.drop_now().await;
}

#[tokio::test]
async fn bad_rows_from_a_plugin_are_refused_with_nothing_committed() {
    let (db, old) = seeded(&[1, 2]).await;
    let long_id = "9".repeat(65);
    let cases = [
        (
            "1\t{}\n2\t{}\n1\t{}\n".to_owned(),
            "product 1 occurs in two rows",
        ),
        (
            format!("1\t{{}}\n{long_id}\t{{}}\n"),
            "has an id of 65 characters",
        ),
        (
            "1\t{}\n2\t[1,2]\n".to_owned(),
            "product 2: data is not a JSON object",
        ),
        (
            "1\t{}\n2\t{\"a\":\n".to_owned(),
            "product 2: data is not valid JSON",
        ),
        // The summary-count guard: the rows returned must be those announced.
        (
            "1\t{}\n2\t{}\n#lie\n".to_owned(),
            "produced an invalid row: its summary announced 3 rows but it returned 2",
        ),
    ];
    for (price_list, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        support::write_snapshot(dir.path(), &[], &[&price_list]);
        let out = support::bin()
            .args(["sync", "--from"])
            .arg(dir.path())
            .arg("--plugin")
            .arg(support::test_plugin("rogue"))
            .args(["--database-url", &db.url(), "--post-load-sql", ""])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{expected}");
        let error = error_line(&out);
        assert!(
            error.contains("plugin test-rogue 0.0.0") && error.contains(expected),
            "{error}"
        );
        assert_eq!(db.rows("raw_item_data").await, old, "{expected}");
    }
    db.drop_now().await;
}

#[tokio::test]
async fn a_dry_run_reports_the_changes_and_writes_nothing() {
    let ids: Vec<u64> = (1..=20).collect();
    let (db, old) = seeded(&ids).await;
    let stamps = db.updated_at().await;
    let dir = tempfile::tempdir().unwrap();
    let mut new_ids: Vec<u64> = (2..=20).collect();
    new_ids.extend([30, 31]);
    snapshot(dir.path(), &new_ids, &[(5, 3.0)]);
    for (mode, says) in [
        // Replace rewrites every row, and says so.
        (
            "replace",
            "dry run: 20 rows now, 21 in the new catalog: replace would delete all 20 and insert 21 \
             (1 current ids are not in the new catalog); nothing was written",
        ),
        (
            "diff",
            "dry run: 20 rows now, 21 in the new catalog: would insert 2, update 1, delete 1, leave 18 unchanged",
        ),
    ] {
        let out = sync(&db, dir.path(), &["--dry-run", "--mode", mode]);
        assert_success(&out);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(stdout.trim_end(), says, "{mode}");
        assert_eq!(db.rows("raw_item_data").await, old, "{mode}");
        assert_eq!(db.updated_at().await, stamps, "{mode}");
    }
    db.drop_now().await;
}

#[tokio::test]
async fn a_killed_connection_mid_load_leaves_the_old_rows() {
    use bitcram_sync::load::{DatabaseTarget, Loader, SyncMode};
    use bitcram_sync::model::Row;

    let (db, old) = seeded(&[1, 2, 3]).await;
    for mode in [SyncMode::Replace, SyncMode::Diff] {
        let target = DatabaseTarget::new(db.url(), db.name.clone());
        let settings = crate::support::sync_run::loader_settings(mode, vec![]);
        let mut loader = Loader::begin(target.connect().await.unwrap(), settings)
            .await
            .unwrap();
        let batch = |from: u64| -> Vec<Row> {
            (from..from + 1500)
                .map(|id| Row {
                    id: id.to_string(),
                    data: r#"{"n":1}"#.into(),
                    stock: 1,
                })
                .collect()
        };
        // One chunk of 1000 rows reaches the server inside the transaction.
        loader.write(batch(100)).await.unwrap();
        db.kill_other_connections().await;
        let failed = match loader.write(batch(5000)).await {
            Err(e) => e,
            Ok(()) => loader
                .finish()
                .await
                .expect_err("the load must fail after its connection died"),
        };
        // The chunk after the kill names itself: 500 rows left from the first
        // batch (ids 1100..1599) and the first 500 of the second.
        let failed = failed.to_string();
        assert!(
            failed.starts_with("insert chunk 2 (1000 rows from product 1100) failed: "),
            "{mode:?}: {failed}"
        );
        assert_eq!(db.rows("raw_item_data").await, old, "{mode:?}");
    }
    db.drop_now().await;
}

#[tokio::test]
async fn db_init_creates_the_table_once_and_sync_checks_it() {
    let db = TestDb::new().await;
    let init = |table: &str| {
        support::bin()
            .args(["db", "init", "--database-url", &db.url(), "--table", table])
            .output()
            .unwrap()
    };
    let out = init("catalog_rows");
    assert_success(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("table catalog_rows created"));
    let out = init("catalog_rows");
    assert_success(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("table catalog_rows already exists"));
    let columns: Vec<(String, String)> = sqlx::query_as(
        "SELECT CAST(COLUMN_NAME AS CHAR), CAST(COLUMN_TYPE AS CHAR) FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'catalog_rows' ORDER BY ORDINAL_POSITION",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["id", "data", "stock", "updated_at"]);
    assert_eq!(columns[0].1, "varchar(64)");
    assert_eq!(columns[3].1, "datetime(6)");

    // The new table takes a sync.
    let dir = tempfile::tempdir().unwrap();
    snapshot(dir.path(), &[1], &[]);
    assert_success(&sync(
        &db,
        dir.path(),
        &["--table", "catalog_rows", "--post-load-sql", ""],
    ));

    // A missing table, or one without the right columns, is named.
    let out = sync(&db, dir.path(), &["--table", "nowhere"]);
    assert!(
        error_line(&out)
            .contains("table nowhere does not exist; create it with `bitcram-sync db init`")
    );
    sqlx::raw_sql("CREATE TABLE half (id VARCHAR(64) PRIMARY KEY, data JSON)")
        .execute(&db.pool)
        .await
        .unwrap();
    let out = sync(&db, dir.path(), &["--table", "half"]);
    assert!(error_line(&out).contains("table half has no column `stock`"));
    db.drop_now().await;
}

#[test]
fn a_table_name_with_a_quote_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    snapshot(dir.path(), &[1], &[]);
    for table in ["raw`item", "raw'item", "a.b.c", "x; DROP TABLE y"] {
        let out = support::bin()
            .args(["sync", "--from"])
            .arg(dir.path())
            .args([
                "--database-url",
                "mysql://root@127.0.0.1:1/none",
                "--table",
                table,
            ])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{table}");
        assert!(
            error_line(&out).contains("--table (TARGET_TABLE)"),
            "{table}"
        );
    }
}

#[tokio::test]
async fn instance_db_connects_through_the_cloud_sql_socket_directory() {
    let db = TestDb::new().await;
    let socket: String = sqlx::query_scalar("SELECT CAST(@@socket AS CHAR)")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let sockets = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(&socket, sockets.path().join("proj:region:inst")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    snapshot(dir.path(), &[7, 8], &[]);
    let out = support::bin()
        .args(["sync", "--from"])
        .arg(dir.path())
        .args(["--post-load-sql", ""])
        .env("INSTANCE_DB", "proj:region:inst")
        .env("USER_DB", "root")
        .env("NAME_DB", &db.name)
        .env("CLOUD_SQL_SOCKET_DIR", sockets.path())
        .env_remove("DATABASE_URL")
        .env_remove("PASSWORD_DB")
        .output()
        .unwrap();
    assert_success(&out);
    assert_eq!(db.rows("raw_item_data").await.len(), 2);

    // Without the socket, the error names the instance.
    let out = support::bin()
        .args(["sync", "--from"])
        .arg(dir.path())
        .env("INSTANCE_DB", "proj:region:missing")
        .env("USER_DB", "root")
        .env("NAME_DB", &db.name)
        .env("CLOUD_SQL_SOCKET_DIR", sockets.path())
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(error_line(&out).contains("Cloud SQL proj:region:missing"));
    db.drop_now().await;
}

#[test]
fn a_missing_or_contradictory_database_setting_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    snapshot(dir.path(), &[1], &[]);
    let out = support::bin()
        .args(["sync", "--from"])
        .arg(dir.path())
        .env_remove("DATABASE_URL")
        .env_remove("INSTANCE_DB")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(error_line(&out).contains("no database configured"));
    let out = support::bin()
        .args(["sync", "--from"])
        .arg(dir.path())
        .env("DATABASE_URL", "mysql://root@127.0.0.1/x")
        .env("INSTANCE_DB", "p:r:i")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        error_line(&out)
            .contains("both --database-url (DATABASE_URL) and --instance-db (INSTANCE_DB)")
    );
}
