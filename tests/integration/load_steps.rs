//! The README's promise that a failed load names its step (`delete`,
//! `insert chunk N`, `post-load statement K`, `commit`) in one line and
//! leaves the table as it was; and the chunk limits (1,000 rows or 4 MiB of
//! ids and `data` per `INSERT`), which show in the chunk numbers.

use bitcram_sync::load::{DatabaseTarget, Loader, SyncMode};
use bitcram_sync::model::Row;

use crate::support::sync_run::{error_line, loader_settings, seeded, sync};
use crate::support::{self};

#[tokio::test]
async fn a_failed_delete_names_the_step_and_changes_nothing() {
    let (db, old) = seeded(&[1, 2, 3]).await;
    let stamps = db.updated_at().await;
    sqlx::raw_sql(
        "CREATE TRIGGER keep_rows BEFORE DELETE ON raw_item_data FOR EACH ROW \
         SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'rows are protected'",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    crate::support::sync_run::snapshot(dir.path(), &[1, 2, 3, 4], &[]);
    let out = sync(&db, dir.path(), &[]);
    assert_eq!(out.status.code(), Some(1));
    let error = error_line(&out);
    assert!(
        error.ends_with("delete: emptying raw_item_data failed: rows are protected (code 45000)"),
        "{error}"
    );
    assert_eq!(db.rows("raw_item_data").await, old);
    assert_eq!(db.rows("mirror").await, old);
    assert_eq!(db.updated_at().await, stamps);
    db.drop_now().await;
}

/// A price list of `count` products whose names are `name_len` characters.
fn wide_snapshot(dir: &std::path::Path, count: u64, name_len: usize) {
    let name = "x".repeat(name_len);
    let items: Vec<String> = (1..=count)
        .map(|id| format!(r#"{{"product_id":{id},"product_name":"{name}"}}"#))
        .collect();
    support::write_snapshot(
        dir,
        &[],
        &[&format!(r#"{{"items":[{}]}}"#, items.join(","))],
    );
}

#[tokio::test]
async fn a_failed_insert_names_its_chunk_which_holds_at_most_1000_rows_or_4_mib() {
    let (db, old) = seeded(&[1, 2, 3]).await;
    let stamps = db.updated_at().await;
    // 2,500 small rows: chunks of 1,000, so the last one is chunk 3 with 500.
    // 50 rows of about 200 KB each: 21 rows pass 4 MiB (20 do not), so
    // chunks of 21, and the last one is chunk 3 with 8 (ids 43 to 50).
    for (count, name_len, expected) in [
        (
            2500,
            1,
            "insert chunk 3 (500 rows from product 2001) failed: refused row (code 45000)",
        ),
        (
            50,
            200_000,
            "insert chunk 3 (8 rows from product 43) failed: refused row (code 45000)",
        ),
    ] {
        // The last product of the catalog is refused.
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP TRIGGER IF EXISTS refuse_last; \
             CREATE TRIGGER refuse_last BEFORE INSERT ON raw_item_data FOR EACH ROW \
             IF NEW.id = '{count}' THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused row'; END IF"
        )))
        .execute(&db.pool)
        .await
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        wide_snapshot(dir.path(), count, name_len);
        for mode in ["replace", "diff"] {
            let out = sync(&db, dir.path(), &["--mode", mode, "--allow-shrink"]);
            assert_eq!(out.status.code(), Some(1), "{mode}");
            let error = error_line(&out);
            assert!(
                error.ends_with(expected),
                "{mode}: {error}\nexpected: {expected}"
            );
            assert_eq!(db.rows("raw_item_data").await, old, "{mode}");
            assert_eq!(db.rows("mirror").await, old, "{mode}");
            assert_eq!(db.updated_at().await, stamps, "{mode}");
        }
    }
    db.drop_now().await;
}

#[tokio::test]
async fn a_failed_commit_names_the_step() {
    let (db, old) = seeded(&[1, 2, 3]).await;
    let target = DatabaseTarget::new(db.url(), db.name.clone());
    let settings = loader_settings(SyncMode::Replace, vec![]);
    let mut loader = Loader::begin(target.connect().await.unwrap(), settings)
        .await
        .unwrap();
    // Exactly one chunk: written at once, so that `COMMIT` is the next
    // statement the loader sends.
    let rows: Vec<Row> = (100..1100)
        .map(|id| Row {
            id: id.to_string(),
            data: r#"{"n":1}"#.into(),
            stock: 1,
        })
        .collect();
    loader.write(rows).await.unwrap();
    db.kill_other_connections().await;
    let error = loader
        .finish()
        .await
        .expect_err("the commit must fail")
        .to_string();
    assert!(error.starts_with("commit failed: "), "{error}");
    assert_eq!(db.rows("raw_item_data").await, old);
    db.drop_now().await;
}

#[tokio::test]
async fn a_lock_held_elsewhere_is_waited_for_only_as_long_as_lock_wait_timeout() {
    let (db, old) = seeded(&[1, 2, 3]).await;
    let mut holder = db.pool.acquire().await.unwrap();
    sqlx::raw_sql("LOCK TABLES raw_item_data READ")
        .execute(&mut *holder)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    crate::support::sync_run::snapshot(dir.path(), &[1, 2, 3, 4], &[]);
    let started = std::time::Instant::now();
    let out = sync(&db, dir.path(), &["--lock-wait-timeout", "2s"]);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1));
    let error = error_line(&out);
    assert!(
        error.starts_with(
            "error: waited more than 2 s (--lock-wait-timeout) for a lock another session holds on the \
             table; nothing was committed: delete: emptying raw_item_data failed: Lock wait timeout exceeded"
        ),
        "{error}"
    );
    assert!(took < std::time::Duration::from_secs(30), "took {took:?}");
    sqlx::raw_sql("UNLOCK TABLES")
        .execute(&mut *holder)
        .await
        .unwrap();
    drop(holder);
    assert_eq!(db.rows("raw_item_data").await, old);
    assert_eq!(db.rows("mirror").await, old);
    db.drop_now().await;
}

#[tokio::test]
async fn the_shrink_guard_allows_exactly_max_delete_percent() {
    // "More than --max-delete-percent" is refused: exactly 10% of 20 rows
    // (2) passes, 3 do not.
    let ids: Vec<u64> = (1..=20).collect();
    let (db, _) = seeded(&ids).await;
    let dir = tempfile::tempdir().unwrap();
    crate::support::sync_run::snapshot(dir.path(), &ids[..17], &[]);
    let out = sync(&db, dir.path(), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(error_line(&out).contains("(15.0%, more than --max-delete-percent 10)"));
    crate::support::sync_run::snapshot(dir.path(), &ids[..18], &[]);
    let out = sync(&db, dir.path(), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(db.rows("raw_item_data").await.len(), 18);
    db.drop_now().await;
}

#[tokio::test]
async fn the_4_mib_of_a_chunk_count_the_ids_as_well_as_the_data() {
    let (db, old) = seeded(&[1, 2, 3]).await;
    // 1,000 rows of a 64-character id and 8,370 bytes of data: 8,434 bytes
    // each, so the 498th row reaches 4 MiB (the data alone would reach it at
    // row 502) and the chunks hold 498, 498 and 4 rows.
    let id = |n: u64| format!("{n:0>64}");
    let data = format!(r#"{{"n":"{}"}}"#, "x".repeat(8362));
    assert_eq!(data.len(), 8370);
    let rows: Vec<Row> = (1..=1000)
        .map(|n| Row {
            id: id(n),
            data: data.clone(),
            stock: 1,
        })
        .collect();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE TRIGGER refuse_last BEFORE INSERT ON raw_item_data FOR EACH ROW \
         IF NEW.id = '{}' THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused row'; END IF",
        id(1000)
    )))
    .execute(&db.pool)
    .await
    .unwrap();
    let target = DatabaseTarget::new(db.url(), db.name.clone());
    let settings = loader_settings(SyncMode::Replace, vec![]);
    let mut loader = Loader::begin(target.connect().await.unwrap(), settings)
        .await
        .unwrap();
    let error = match loader.write(rows).await {
        Ok(()) => loader.finish().await.map(|_| ()),
        Err(e) => Err(e),
    }
    .expect_err("the last row is refused")
    .to_string();
    assert_eq!(
        error,
        format!(
            "insert chunk 3 (4 rows from product {}) failed: refused row (code 45000)",
            id(997)
        )
    );
    assert_eq!(db.rows("raw_item_data").await, old);
    db.drop_now().await;
}
