//! Post-load statements can never end the load's transaction: what would
//! commit or roll back is refused before anything is written (through the
//! binary), and a statement that ends it anyway is caught before `COMMIT`
//! (through the loader, with a procedure redefined after the check).

use bitcram_sync::load::{DatabaseTarget, LoadSettings, Loader, SyncMode};
use bitcram_sync::model::Row;

use crate::support::db::TestDb;
use crate::support::sync_run::{error_line, loader_settings, seeded, snapshot};
use crate::support::{self};

/// The tables of the test database, and the columns of `mirror`: a refused
/// statement must not have created, renamed or altered anything.
async fn schema(db: &TestDb) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT CAST(CONCAT(TABLE_NAME, '.', COLUMN_NAME) AS CHAR) FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME, ORDINAL_POSITION",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

fn sync_with(
    db: &TestDb,
    dir: &std::path::Path,
    post_load: &str,
    extra: &[&str],
) -> std::process::Output {
    support::bin()
        .args(["sync", "--from"])
        .arg(dir)
        .args(["--database-url", &db.url(), "--post-load-sql", post_load])
        .args(extra)
        .output()
        .unwrap()
}

#[tokio::test]
async fn statements_that_end_the_transaction_are_refused_before_the_run_connects() {
    let (db, old) = seeded(&[1, 2, 3, 4]).await;
    let tables = schema(&db).await;
    let dir = tempfile::tempdir().unwrap();
    snapshot(dir.path(), &[1, 2, 3, 4, 5], &[(1, 50.0)]);
    for (statement, keyword) in [
        (
            "TRUNCATE mirror",
            "`TRUNCATE mirror`: TRUNCATE commits the transaction on its own",
        ),
        (
            "CREATE TABLE extra (id INT)",
            "`CREATE TABLE extra (id INT)`: CREATE is DDL",
        ),
        ("ALTER TABLE mirror ADD COLUMN c INT", "ALTER is DDL"),
        ("RENAME TABLE mirror TO mirror_old", "RENAME is DDL"),
        ("COMMIT", "`COMMIT`: COMMIT ends the load's transaction"),
        (
            "START TRANSACTION",
            "START TRANSACTION commits the load's transaction",
        ),
        (
            "LOCK TABLES mirror WRITE",
            "LOCK TABLES commits the transaction on its own",
        ),
        (
            "ROLLBACK",
            "`ROLLBACK`: ROLLBACK ends the load's transaction",
        ),
        ("SET autocommit = 1", "setting autocommit"),
    ] {
        for mode in ["replace", "diff"] {
            let out = sync_with(&db, dir.path(), statement, &["--mode", mode]);
            assert_eq!(out.status.code(), Some(2), "{statement} ({mode})");
            let error = error_line(&out);
            assert!(
                error.contains(&format!(
                    "--post-load-sql (POST_LOAD_SQL): post-load statement 1 (`{statement}`) is refused: "
                )) && error.contains(keyword),
                "{statement}: {error}"
            );
            assert_eq!(db.rows("raw_item_data").await, old, "{statement}");
            assert_eq!(db.rows("mirror").await, old, "{statement}");
            assert_eq!(schema(&db).await, tables, "{statement}");
        }
    }

    // POST_LOAD_SQL's list is checked statement by statement: the second
    // one here is the culprit.
    let out = support::bin()
        .args(["sync", "--from"])
        .arg(dir.path())
        .args(["--database-url", &db.url()])
        .env("POST_LOAD_SQL", "CALL update_mirror(); TRUNCATE mirror")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let error = error_line(&out);
    assert!(
        error.contains("post-load statement 2 (`TRUNCATE mirror`) is refused"),
        "{error}"
    );
    assert_eq!(db.rows("raw_item_data").await, old);
    assert_eq!(db.rows("mirror").await, old);
    db.drop_now().await;
}

/// Procedures that commit, directly or through the procedures they call.
const PROCEDURES: &str = "
    CREATE PROCEDURE truncating_mirror() BEGIN
      TRUNCATE mirror;
      INSERT INTO mirror (id, data, stock) SELECT id, data, stock FROM raw_item_data;
    END;
    CREATE PROCEDURE ddl_mirror() BEGIN
      DELETE FROM mirror;
      CREATE TABLE extra (id INT);
    END;
    CREATE PROCEDURE committing_helper() BEGIN
      DECLARE EXIT HANDLER FOR SQLEXCEPTION BEGIN ROLLBACK; RESIGNAL; END;
      DELETE FROM mirror;
    END;
    CREATE PROCEDURE outer_mirror() BEGIN
      CALL update_mirror();
      IF (SELECT COUNT(*) FROM mirror) > 0 THEN
        CALL committing_helper();
      END IF;
    END;
    CREATE PROCEDURE dynamic_mirror() BEGIN
      SET @sql = 'TRUNCATE mirror';
      PREPARE stmt FROM @sql;
      EXECUTE stmt;
    END;";

#[tokio::test]
async fn a_call_of_a_procedure_that_commits_is_refused_before_anything_is_written() {
    let (db, old) = seeded(&[1, 2, 3, 4]).await;
    sqlx::raw_sql(PROCEDURES).execute(&db.pool).await.unwrap();
    let tables = schema(&db).await;
    let dir = tempfile::tempdir().unwrap();
    snapshot(dir.path(), &[1, 2, 3, 4, 5], &[(1, 50.0)]);
    let schema_name = &db.name;
    for (statement, says) in [
        (
            "CALL truncating_mirror()".to_owned(),
            format!(
                "is refused: procedure {schema_name}.truncating_mirror runs `TRUNCATE mirror`: TRUNCATE commits"
            ),
        ),
        (
            format!("CALL `{schema_name}`.ddl_mirror()"),
            format!(
                "is refused: procedure {schema_name}.ddl_mirror runs `CREATE TABLE extra (id INT)`: CREATE is DDL"
            ),
        ),
        (
            "CALL outer_mirror()".to_owned(),
            format!(
                "is refused: procedure {schema_name}.outer_mirror → calls {schema_name}.committing_helper runs \
                 `ROLLBACK`: ROLLBACK ends the load's transaction"
            ),
        ),
        (
            "CALL dynamic_mirror()".to_owned(),
            format!(
                "is refused: procedure {schema_name}.dynamic_mirror runs `PREPARE stmt FROM @sql`: PREPARE runs SQL \
                 that is only known when it runs"
            ),
        ),
        (
            "CALL nowhere()".to_owned(),
            format!("procedure {schema_name}.nowhere does not exist"),
        ),
    ] {
        for extra in [
            &["--mode", "replace"][..],
            &["--mode", "diff"],
            &["--dry-run"],
        ] {
            let out = sync_with(&db, dir.path(), &statement, extra);
            assert_eq!(out.status.code(), Some(1), "{statement} {extra:?}");
            let error = error_line(&out);
            assert!(
                error.contains(&format!("post-load statement 1 (`{statement}`)"))
                    && error.contains(&says),
                "{statement} {extra:?}:\n{error}\nexpected: {says}"
            );
            assert_eq!(db.rows("raw_item_data").await, old, "{statement}");
            assert_eq!(db.rows("mirror").await, old, "{statement}");
            assert_eq!(schema(&db).await, tables, "{statement}");
        }
    }
    db.drop_now().await;
}

fn settings(post_load: &str) -> LoadSettings {
    loader_settings(SyncMode::Replace, vec![post_load.to_owned()])
}

fn rows(ids: std::ops::Range<u64>) -> Vec<Row> {
    ids.map(|id| Row {
        id: id.to_string(),
        data: format!(r#"{{"n":{id}}}"#),
        stock: 1,
    })
    .collect()
}

/// A procedure that passed the check at the start of the load is replaced,
/// before the post-load statements run, by one that ends the transaction:
/// the job says so, and says truly whether the rows were committed.
/// Begins a load whose post-load statement is `CALL swapped()`, a harmless
/// procedure when the load checks it, redefined with `body` afterwards; then
/// writes rows 100 to 109 and finishes. Returns the error the load fails with.
async fn load_with_a_swapped_procedure(db: &TestDb, body: &str) -> String {
    sqlx::raw_sql(
        "DROP PROCEDURE IF EXISTS swapped;
         CREATE PROCEDURE swapped() BEGIN DELETE FROM mirror; END",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let target = DatabaseTarget::new(db.url(), db.name.clone());
    let mut loader = Loader::begin(target.connect().await.unwrap(), settings("CALL swapped()"))
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP PROCEDURE swapped; CREATE PROCEDURE swapped() {body}"
    )))
    .execute(&db.pool)
    .await
    .unwrap();
    loader.write(rows(100..110)).await.unwrap();
    loader
        .finish()
        .await
        .expect_err("the load must fail")
        .to_string()
}

#[tokio::test]
async fn a_statement_that_ends_the_transaction_anyway_is_caught_before_commit() {
    let (db, old) = seeded(&[1, 2, 3]).await;
    let old_mirror = db.rows("mirror").await;
    for (body, says, committed) in [
        // The issue's case: the mirror emptied by an implicit commit, then
        // an error.
        (
            "BEGIN TRUNCATE mirror; SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'boom'; END",
            "failed: boom (code 45000), and the load's transaction had ended: the server committed what the \
             run had written, so the new rows of raw_item_data are in place but the post-load statements did \
             not complete",
            true,
        ),
        (
            "BEGIN ROLLBACK; END",
            "ended the load's transaction: the server rolled it back, so nothing the run wrote to \
             raw_item_data was kept",
            false,
        ),
    ] {
        let error = load_with_a_swapped_procedure(&db, body).await;
        assert!(
            error.starts_with("post-load statement 1 (`CALL swapped()`) ") && error.contains(says),
            "{error}\nexpected: {says}"
        );
        let table = db.rows("raw_item_data").await;
        if committed {
            let ids: Vec<String> = table.iter().map(|(id, _, _)| id.clone()).collect();
            let expected: Vec<String> = (100..110).map(|id| id.to_string()).collect();
            assert_eq!(
                ids, expected,
                "the message said the new rows were committed"
            );
            assert!(
                db.rows("mirror").await.is_empty(),
                "TRUNCATE emptied the mirror"
            );
            // Put the old state back for the next case.
            sqlx::raw_sql("DELETE FROM raw_item_data; DELETE FROM mirror;")
                .execute(&db.pool)
                .await
                .unwrap();
            for (id, data, stock) in &old {
                sqlx::query("INSERT INTO raw_item_data VALUES (?, ?, ?, NOW(6))")
                    .bind(id)
                    .bind(data)
                    .bind(stock)
                    .execute(&db.pool)
                    .await
                    .unwrap();
            }
            sqlx::raw_sql("INSERT INTO mirror SELECT id, data, stock FROM raw_item_data")
                .execute(&db.pool)
                .await
                .unwrap();
        } else {
            assert_eq!(table, old, "the message said nothing was kept");
            assert_eq!(db.rows("mirror").await, old_mirror);
        }
    }
    db.drop_now().await;
}

#[tokio::test]
async fn a_statement_that_commits_and_starts_another_transaction_is_caught_by_the_mark() {
    // After each statement a transaction is open, so only the mark set when
    // the load began shows that it is not the run's any more.
    let (db, _) = seeded(&[1, 2, 3]).await;
    let error = load_with_a_swapped_procedure(&db, "BEGIN COMMIT; START TRANSACTION; END").await;
    assert!(
        error.starts_with(
            "the post-load statements ended the load's transaction and started another: "
        ) && error.ends_with("post-load statements must not commit or roll back"),
        "{error}"
    );
    // The COMMIT did commit the rows written so far: the message says so.
    let ids: Vec<String> = db
        .rows("raw_item_data")
        .await
        .into_iter()
        .map(|(id, _, _)| id)
        .collect();
    assert_eq!(ids, (100..110).map(|id| id.to_string()).collect::<Vec<_>>());
    assert!(error.contains("committed"), "{error}");
    db.drop_now().await;
}

#[tokio::test]
async fn a_procedure_whose_body_the_user_may_not_read_is_refused_until_granted() {
    let (db, old) = seeded(&[1, 2, 3]).await;
    let user = format!("bitcram_nobody_{}", std::process::id());
    db.create_user(&user, "pw-nobody").await;
    let dir = tempfile::tempdir().unwrap();
    snapshot(dir.path(), &[1, 2, 3, 4], &[]);
    let run = || {
        support::bin()
            .args(["sync", "--from"])
            .arg(dir.path())
            .args(["--database-url", &db.url_as(&user, "pw-nobody")])
            .args(["--post-load-sql", "CALL update_mirror()"])
            .output()
            .unwrap()
    };
    // The job's user has every privilege on the database, but did not
    // define the procedure: its body is hidden, so it cannot be checked.
    let out = run();
    assert_eq!(out.status.code(), Some(1));
    let error = error_line(&out);
    assert!(
        error.contains(&format!(
            "post-load statement 1 (`CALL update_mirror()`): the body of procedure {}.update_mirror \
             cannot be read by this database user, so it cannot be checked: make the user its \
             definer, or grant it SHOW_ROUTINE (MySQL 8) or SELECT on mysql.proc (MariaDB)",
            db.name
        )),
        "{error}"
    );
    assert_eq!(db.rows("raw_item_data").await, old);
    // With the grant the README gives, the same run loads.
    db.grant_reading_procedures(&user).await;
    let out = run();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(db.rows("raw_item_data").await.len(), 4);
    assert_eq!(db.rows("mirror").await.len(), 4);
    db.drop_user(&user).await;
    db.drop_now().await;
}

#[tokio::test]
async fn post_load_statements_may_use_savepoints_of_their_own() {
    let (db, _) = seeded(&[1, 2]).await;
    let dir = tempfile::tempdir().unwrap();
    snapshot(dir.path(), &[1, 2, 3], &[]);
    let out = support::bin()
        .args(["sync", "--from"])
        .arg(dir.path())
        .args(["--database-url", &db.url()])
        .args(["--post-load-sql", "SAVEPOINT before_mirror"])
        .args(["--post-load-sql", "DELETE FROM raw_item_data"])
        .args(["--post-load-sql", "ROLLBACK TO SAVEPOINT before_mirror"])
        .args(["--post-load-sql", "CALL update_mirror()"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        db.rows("raw_item_data").await.len(),
        3,
        "the DELETE was rolled back to the savepoint"
    );
    assert_eq!(db.rows("mirror").await.len(), 3);
    db.drop_now().await;
}

#[tokio::test]
async fn a_table_not_as_the_last_run_left_it_gets_its_post_load_statements() {
    let (db, _) = seeded(&[1, 2]).await;
    let init = support::bin()
        .args(["db", "init", "--database-url", &db.url()])
        .output()
        .unwrap();
    assert!(init.status.success());
    let dir = tempfile::tempdir().unwrap();
    snapshot(dir.path(), &[1, 2], &[]);
    let run = || {
        support::bin()
            .args(["sync", "--from"])
            .arg(dir.path())
            .args(["--database-url", &db.url(), "--mode", "diff"])
            .args(["--post-load-sql", "CALL update_mirror()"])
            .output()
            .unwrap()
    };
    assert!(run().status.success());
    // The rows of a newer catalog reach the table while its mirror does
    // not (as when a post-load statement committed on its own and then
    // failed): the table no longer matches the last run's record.
    snapshot(dir.path(), &[1, 2], &[(1, 7.0)]);
    sqlx::raw_sql("UPDATE raw_item_data SET stock = 7 WHERE id = '1'; DELETE FROM mirror")
        .execute(&db.pool)
        .await
        .unwrap();
    let out = run();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        db.rows("mirror").await,
        db.rows("raw_item_data").await,
        "the mirror caught up"
    );
    db.drop_now().await;
}
