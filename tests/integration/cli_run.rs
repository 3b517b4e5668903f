//! The binary as an operator meets it: the demo (checked row by row against
//! the sample snapshot), JSON logs for Cloud Logging, and the exit codes.

use std::collections::HashMap;

use crate::support;

/// The sample's expected stock per product, worked out by hand from
/// `host/demo/snapshot/stock.0.json`: fractions truncated toward zero,
/// 0 without a stock row; product 777777 has stock but no price-list entry.
const EXPECTED_STOCK: &[(&str, i64)] = &[
    ("214101", 42),
    ("214102", 7),
    ("214103", -2),
    ("305001", 3),
    ("305002", 0),
    ("410010", 120),
    ("410011", 0),
    ("520300", 1),
    ("990001", 0),
];

#[tokio::test]
async fn the_demo_loads_the_sample_snapshot_into_sqlite_row_by_row() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("demo.db");
    let url = format!("sqlite://{}", file.display());
    let out = support::bin()
        .args(["demo", "--database-url", &url])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(
            "9 price-list items, 8 stock items (1 for products not in the catalog, dropped)"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("214101  stock   42  Café Tostado Molido 500 g"),
        "{stdout}"
    );

    // Every row against the sample's price list: data is the item without
    // product_id, nothing else changed; stock as worked out above.
    let price_list: serde_json::Value = serde_json::from_slice(
        &std::fs::read(support::workspace().join("host/demo/snapshot/price-list.0.json")).unwrap(),
    )
    .unwrap();
    let mut expected_data = HashMap::new();
    for item in price_list["items"].as_array().unwrap() {
        let mut item = item.as_object().unwrap().clone();
        let id = item.remove("product_id").unwrap().to_string();
        expected_data.insert(id, serde_json::Value::Object(item));
    }
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let rows: Vec<(String, String, i64, String)> =
        sqlx::query_as("SELECT id, data, stock, updated_at FROM raw_item_data ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    pool.close().await;
    assert_eq!(rows.len(), EXPECTED_STOCK.len());
    for ((id, data, stock, updated_at), (expected_id, expected_stock)) in
        rows.iter().zip(EXPECTED_STOCK)
    {
        assert_eq!(id, expected_id);
        assert_eq!(stock, expected_stock, "product {id}");
        let data: serde_json::Value = serde_json::from_str(data).unwrap();
        assert_eq!(&data, &expected_data[id], "product {id}");
        assert_eq!(updated_at, &rows[0].3, "one sync time for every row");
    }

    // Run again: the same catalog replaces itself, nothing is lost.
    let again = support::bin()
        .args(["demo", "--database-url", &url])
        .output()
        .unwrap();
    assert!(again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("9 rows before, 9 inserted, 0 deleted")
    );
}

fn json_lines(stderr: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stderr)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect()
}

#[test]
fn json_logs_carry_severity_message_and_the_run_id() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("demo.db").display());
    for (var, value) in [("LOG_FORMAT", "json"), ("CLOUD_RUN_JOB", "bitcram-sync")] {
        let out = support::bin()
            .args(["demo", "--database-url", &url])
            .env(var, value)
            .env("RUST_LOG", "info")
            .output()
            .unwrap();
        assert!(out.status.success());
        let lines = json_lines(&out.stderr);
        assert!(!lines.is_empty(), "{var}: no log lines");
        for line in &lines {
            assert!(
                ["DEBUG", "INFO", "WARNING", "ERROR"].contains(&line["severity"].as_str().unwrap()),
                "{line}"
            );
            assert!(line["message"].is_string(), "{line}");
            assert!(line["time"].is_string(), "{line}");
        }
        let finished = lines
            .iter()
            .find(|l| l["message"] == "sync finished")
            .expect("the run report entry");
        assert_eq!(finished["inserted"], 9);
        assert_eq!(finished["mode"], "replace");
        let run_id = finished["run_id"].as_str().unwrap();
        assert_eq!(finished["logging.googleapis.com/labels"]["run_id"], run_id);
    }
}

#[test]
fn a_failed_run_logs_its_error_as_one_json_entry_of_severity_error() {
    let out = support::bin()
        .args([
            "sync",
            "--from",
            "/nonexistent/snapshot",
            "--database-url",
            "sqlite:///nonexistent/x.db",
        ])
        .env("LOG_FORMAT", "json")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let lines = json_lines(&out.stderr);
    let errors: Vec<_> = lines.iter().filter(|l| l["severity"] == "ERROR").collect();
    assert_eq!(errors.len(), 1, "{lines:?}");
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/snapshot")
    );
}

#[test]
fn exit_codes_tell_usage_refusal_and_failure_apart() {
    let dir = tempfile::tempdir().unwrap();
    support::write_snapshot(
        dir.path(),
        &[r#"{"items":[]}"#],
        &[r#"{"items":[{"product_id":1}]}"#],
    );
    let db = format!("sqlite://{}", dir.path().join("x.db").display());

    // 2: usage and configuration errors.
    let out = support::bin()
        .args(["sync", "--mode", "sideways"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invalid value 'sideways' for '--mode <MODE>'")
            && stderr.contains("[possible values: replace, diff]"),
        "{stderr}"
    );
    let out = support::bin()
        .arg("sync")
        .env("DATABASE_URL", &db)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--bitcram-url (URL_BITCRAM) is not set")
    );

    // 3: a refused plugin, before any database is touched.
    let out = support::bin()
        .args(["sync", "--from"])
        .arg(dir.path())
        .args(["--database-url", &db, "--plugin"])
        .arg(support::test_plugin("sneaky"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .contains("refused: it imports wasi:http/handler@0.3.0, which is outside the contract"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("x.db").exists(),
        "the database was not touched"
    );

    // 1: a failed run (here: the table does not exist in the file).
    std::fs::write(dir.path().join("x.db"), b"").unwrap();
    let out = support::bin()
        .args(["sync", "--from"])
        .arg(dir.path())
        .args(["--database-url", &db])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("table raw_item_data does not exist"));
}

#[test]
fn help_documents_the_exit_codes_and_every_subcommand() {
    let out = support::bin().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "sync",
        "demo",
        "snapshot",
        "db",
        "plugin",
        "Exit codes:",
        "3  the transform plugin was refused",
    ] {
        assert!(help.contains(needle), "--help lacks {needle:?}:\n{help}");
    }
    let out = support::bin().args(["sync", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "URL_BITCRAM",
        "INSTANCE_DB",
        "POST_LOAD_SQL",
        "BITCRAM_TOKEN",
        "PASSWORD_DB",
        "Exit codes:",
    ] {
        assert!(help.contains(needle), "sync --help lacks {needle:?}");
    }
}

#[tokio::test]
async fn the_sqlite_sink_takes_both_modes_like_mysql() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("local.db").display());
    let init = support::bin()
        .args(["db", "init", "--database-url", &url])
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let sync = |snapshot: &std::path::Path, mode: &str, report: &std::path::Path| {
        let out = support::bin()
            .args(["sync", "--from"])
            .arg(snapshot)
            .args([
                "--database-url",
                &url,
                "--mode",
                mode,
                "--max-delete-percent",
                "50",
                "--report",
            ])
            .arg(report)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: serde_json::Value =
            serde_json::from_slice(&std::fs::read(report).unwrap()).unwrap();
        let r = &report["rows"];
        (
            r["inserted"].clone(),
            r["updated"].clone(),
            r["deleted"].clone(),
            r["unchanged"].clone(),
            report["rows"]["post_load_statements"].clone(),
        )
    };
    let first = dir.path().join("first");
    support::write_snapshot(
        &first,
        &[r#"{"items":[{"product_id":1,"product_balance":2}]}"#],
        &[r#"{"items":[{"product_id":1},{"product_id":2},{"product_id":3}]}"#],
    );
    let report = dir.path().join("r.json");
    assert_eq!(
        sync(&first, "replace", &report),
        (3.into(), 0.into(), 0.into(), 0.into(), 0.into()),
        "no post-load statement on SQLite unless given"
    );

    let second = dir.path().join("second");
    support::write_snapshot(
        &second,
        &[r#"{"items":[{"product_id":1,"product_balance":5}]}"#],
        &[r#"{"items":[{"product_id":1},{"product_id":2},{"product_id":4}]}"#],
    );
    assert_eq!(
        sync(&second, "diff", &report),
        (1.into(), 1.into(), 1.into(), 1.into(), 0.into())
    );
    assert_eq!(
        sync(&second, "diff", &report),
        (0.into(), 0.into(), 0.into(), 3.into(), 0.into())
    );

    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT id, stock FROM raw_item_data ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    pool.close().await;
    assert_eq!(
        rows,
        vec![
            ("1".to_owned(), 5),
            ("2".to_owned(), 0),
            ("4".to_owned(), 0)
        ]
    );
}
