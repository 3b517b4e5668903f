//! `bitcram-sync sync` (and `snapshot`'s retries) against a fake Bitcram and
//! a fake Secret Manager over real sockets, into a real MariaDB: the whole
//! path of a production run, and where the token may and may not go.

use std::process::{Command, Output};

use crate::support::db::TestDb;
use crate::support::fake_bitcram::{
    CHECKOUTS, FakeServer, PRICE_LIST, Reply, STOCK, secret_access_path, secret_reply,
};
use crate::support::{self};

pub(crate) const TOKEN: &str = "tok-live-9c1e77d2";
pub(crate) const CHECKOUT_BODY: &str = r#"{"items":[{"id":17,"checkout_number":3,"is_open":true,"warehouse":{"id":5},"price_list":{"id":248}}]}"#;
pub(crate) const PRICE_LIST_BODY: &str = r#"{"items":[{"product_id":214101,"price":12345.0,"product_name":"Café"},{"product_id":214102,"price":null,"product_name":"Té"}]}"#;
pub(crate) const STOCK_BODY: &str = r#"{"items":[{"product_id":214101,"product":{"id":214101},"warehouse_id":5,"product_balance":-2.5},{"product":{"id":9},"warehouse_id":5,"product_balance":1}]}"#;

pub(crate) async fn bitcram() -> FakeServer {
    bitcram_answering_price_list([Reply::ok(PRICE_LIST_BODY)]).await
}

/// A fake Bitcram whose checkout and stock calls succeed and whose price
/// list gives `replies`, in turn.
pub(crate) async fn bitcram_answering_price_list(
    replies: impl IntoIterator<Item = Reply>,
) -> FakeServer {
    let server = FakeServer::start().await;
    server.script(CHECKOUTS, [Reply::ok(CHECKOUT_BODY)]);
    server.script(PRICE_LIST, replies);
    server.script(STOCK, [Reply::ok(STOCK_BODY)]);
    server
}

/// Runs the binary off the async runtime, so the fake servers keep serving.
pub(crate) async fn run(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

fn live_sync(server: &FakeServer, db: &TestDb) -> Command {
    let mut cmd = support::bin();
    cmd.arg("sync")
        .env("URL_BITCRAM", server.url())
        .env("CHECKOUT", "3")
        .env("DATABASE_URL", db.url())
        .env("POST_LOAD_SQL", "CALL update_mirror()");
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_sync_with_the_token_from_secret_manager_lands_every_row() {
    let server = bitcram().await;
    let secrets = FakeServer::start().await;
    secrets.script(
        &secret_access_path("acme", "bitcram-token", "latest"),
        [secret_reply(
            "projects/acme/secrets/bitcram-token/versions/4",
            format!("  {TOKEN}\n").as_bytes(),
            Some(crc32c::crc32c(format!("  {TOKEN}\n").as_bytes())),
        )],
    );
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let report_file = dir.path().join("report.json");
    let mut cmd = live_sync(&server, &db);
    cmd.env("PROJECT_ID", "acme")
        .env("SECRET_ID", "bitcram-token")
        .env("SECRET_MANAGER_ENDPOINT", secrets.url())
        .arg("--report")
        .arg(&report_file);
    let out = run(cmd).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    assert_eq!(
        db.rows("raw_item_data").await,
        vec![
            (
                "214101".to_owned(),
                r#"{"price":12345.0,"product_name":"Café"}"#.to_owned(),
                -2
            ),
            (
                "214102".to_owned(),
                r#"{"price":null,"product_name":"Té"}"#.to_owned(),
                0
            ),
        ]
    );
    assert_eq!(db.rows("mirror").await.len(), 2);

    // Every call carried the trimmed token; the filters were as documented.
    server.assert_documented_calls(TOKEN, "3", 5);

    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report_file).unwrap()).unwrap();
    assert_eq!(report["source"]["kind"], "bitcram");
    assert_eq!(report["source"]["checkout_id"], 17);
    assert_eq!(report["source"]["warehouse_id"], 5);
    assert_eq!(report["source"]["dropped_stock_items"], 1);
    assert_eq!(report["rows"]["inserted"], 2);
    assert!(!String::from_utf8_lossy(&std::fs::read(&report_file).unwrap()).contains(TOKEN));
    db.drop_now().await;
}

/// Loads one product (and its mirror row) from a snapshot; returns both
/// tables as they then are.
async fn seed_one_product(db: &TestDb) -> Tables {
    let dir = tempfile::tempdir().unwrap();
    support::write_snapshot(dir.path(), &[], &[r#"{"items":[{"product_id":1}]}"#]);
    let mut cmd = support::bin();
    cmd.args(["sync", "--from"])
        .arg(dir.path())
        .args(["--database-url", &db.url()])
        .env("POST_LOAD_SQL", "CALL update_mirror()");
    let seed = run(cmd).await;
    assert!(
        seed.status.success(),
        "{}",
        String::from_utf8_lossy(&seed.stderr)
    );
    let tables = tables(db).await;
    assert_eq!((tables.0.len(), tables.1.len()), (1, 1));
    tables
}

/// A live sync with the token from the environment that must fail (exit
/// code 1); its stderr.
async fn failed_live_sync(server: &FakeServer, db: &TestDb) -> String {
    let mut cmd = live_sync(server, db);
    cmd.env("BITCRAM_TOKEN", TOKEN);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(1));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

type Tables = (Vec<(String, String, i64)>, Vec<(String, String, i64)>);

/// `raw_item_data` and `mirror`.
async fn tables(db: &TestDb) -> Tables {
    (db.rows("raw_item_data").await, db.rows("mirror").await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_checkout_changes_nothing() {
    let server = FakeServer::start().await;
    server.script(CHECKOUTS, [Reply::ok(r#"{"items":[]}"#)]);
    let db = TestDb::new().await;
    let before = seed_one_product(&db).await;

    let stderr = failed_live_sync(&server, &db).await;
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("/api/checkouts/index")
            && errors[0].ends_with("no checkout has the number 3"),
        "{stderr}"
    );
    assert_eq!(tables(&db).await, before);
    db.drop_now().await;
}

/// The price list's envelope is checked beside the transform in a live
/// sync; a list that fails the check still stops the run before any write,
/// with the host's message naming the endpoint (not the plugin's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_price_list_cut_short_stops_a_live_sync_before_any_write() {
    let server = FakeServer::start().await;
    server.script(CHECKOUTS, [Reply::ok(CHECKOUT_BODY)]);
    // Complete HTTP, incomplete JSON: the download succeeds, the check fails.
    server.script(
        PRICE_LIST,
        [Reply::ok(r#"{"items":[{"product_id":214101,"price":1},"#)],
    );
    server.script(STOCK, [Reply::ok(STOCK_BODY)]);
    let db = TestDb::new().await;
    let before = seed_one_product(&db).await;

    let stderr = failed_live_sync(&server, &db).await;
    let error_lines: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(error_lines.len(), 1, "{stderr}");
    assert!(
        error_lines[0].contains("price_list (/api/checkouts/index/17/price_list)")
            && error_lines[0].contains("cut short"),
        "{stderr}"
    );
    assert!(!stderr.contains(TOKEN));
    assert_eq!(tables(&db).await, before);
    db.drop_now().await;
}

/// The price list streams into the transform and the load as it arrives:
/// a connection dropped in the middle of it, after thousands of rows were
/// written inside the transaction, fails the run with nothing committed,
/// and the body is not fetched again (what was taken of it is gone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_dropped_mid_price_list_fails_the_run_with_nothing_committed() {
    let items: Vec<String> = (1..=20_000)
        .map(|id| format!(r#"{{"product_id":{id},"price":{id}.5,"product_name":"Producto {id}"}}"#))
        .collect();
    let body = format!(r#"{{"items":[{}]}}"#, items.join(","));
    let cut = body.len() * 3 / 4;
    let server = FakeServer::start().await;
    server.script(CHECKOUTS, [Reply::ok(CHECKOUT_BODY)]);
    server.script(
        PRICE_LIST,
        [
            Reply::ok(body.clone()).identity().cut_after(cut),
            Reply::ok(body),
        ],
    );
    server.script(STOCK, [Reply::ok(STOCK_BODY)]);
    let db = TestDb::new().await;
    let before = seed_one_product(&db).await;

    let mut cmd = live_sync(&server, &db);
    cmd.env("BITCRAM_TOKEN", TOKEN)
        .env("RUST_LOG", "bitcram_sync=debug");
    let out = run(cmd).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let error_lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(error_lines.len(), 1, "{stderr}");
    assert!(
        error_lines[0].contains("Bitcram price_list (/api/checkouts/index/17/price_list): ")
            && error_lines[0].contains("the response body was cut short")
            && error_lines[0].contains("is not fetched again"),
        "{stderr}"
    );
    // Rows were on their way to the table when the cut came.
    assert!(
        stderr.contains("rows written inside the transaction"),
        "{stderr}"
    );
    assert_eq!(server.requests_to(PRICE_LIST).len(), 1);
    assert_eq!(tables(&db).await, before);
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_appears_nowhere_when_a_run_fails() {
    // The price list answers 401 with a body that echoes the token back, and
    // everything is logged at the most verbose level.
    let server = bitcram_answering_price_list([Reply::json(
        401,
        format!(r#"{{"error":"invalid token {TOKEN}"}}"#),
    )])
    .await;
    let db = TestDb::new().await;
    let before = seed_one_product(&db).await;
    let work = tempfile::tempdir().unwrap();
    for format in ["human", "json"] {
        let report_file = work.path().join(format!("report-{format}.json"));
        let mut cmd = live_sync(&server, &db);
        cmd.current_dir(work.path())
            .env("BITCRAM_TOKEN", TOKEN)
            .env("RUST_LOG", "trace")
            .env("LOG_FORMAT", format)
            .arg("--report")
            .arg(&report_file);
        let out = run(cmd).await;
        assert_eq!(out.status.code(), Some(1), "{format}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("token rejected (HTTP 401)"),
            "{format}: {stderr}"
        );
        assert!(
            !stdout.contains(TOKEN),
            "{format}: the token leaked to stdout"
        );
        assert!(
            !stderr.contains(TOKEN),
            "{format}: the token leaked to stderr"
        );
        // The failed run wrote its report, with the error and no token.
        let report: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&report_file).unwrap()).unwrap();
        assert_eq!(report["outcome"], "failed", "{format}");
        let error = report["error"].as_str().unwrap();
        assert!(error.contains("token rejected (HTTP 401)"), "{error}");
        assert!(!error.contains(TOKEN));
        assert_eq!(tables(&db).await, before, "{format}: the run rolled back");
    }
    // Nor in any file the runs wrote.
    let written = support::files(work.path());
    assert_eq!(written.len(), 2, "{written:?}");
    for file in written {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(TOKEN),
            "the token leaked into {}",
            file.display()
        );
    }
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bitcram_token_wins_over_secret_manager() {
    let server = bitcram().await;
    let secrets = FakeServer::start().await;
    secrets.script(
        &secret_access_path("acme", "bitcram-token", "latest"),
        [secret_reply(
            "projects/acme/secrets/bitcram-token/versions/1",
            b"the-other-token",
            Some(crc32c::crc32c(b"the-other-token")),
        )],
    );
    let db = TestDb::new().await;
    let mut cmd = live_sync(&server, &db);
    cmd.env("BITCRAM_TOKEN", TOKEN)
        .env("PROJECT_ID", "acme")
        .env("SECRET_ID", "bitcram-token")
        .env("SECRET_MANAGER_ENDPOINT", secrets.url());
    let out = run(cmd).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    server.assert_documented_calls(TOKEN, "3", 5);
    assert!(secrets.requests().is_empty(), "Secret Manager was asked");
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_call_is_tried_five_times_by_default() {
    let server =
        bitcram_answering_price_list((0..6).map(|_| Reply::json(503, r#"{"error":"busy"}"#))).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = support::bin();
    cmd.args(["snapshot", "--out"])
        .arg(dir.path().join("snap"))
        .env("URL_BITCRAM", server.url())
        .env("CHECKOUT", "3")
        .env("BITCRAM_TOKEN", TOKEN);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("503"), "{stderr}");
    assert_eq!(server.requests_to(PRICE_LIST).len(), 5, "{stderr}");
    // Exponential backoff from 0.5 s: 0.5 + 1 + 2 + 4 s between the tries,
    // each with jitter.
    let tries = server.requests_to(PRICE_LIST);
    let spread = tries[4].at - tries[0].at;
    assert!(
        spread >= std::time::Duration::from_secs(3),
        "retried within {spread:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_password_appears_nowhere() {
    let db = TestDb::new().await;
    let user = format!("bitcram_pw_{}", std::process::id());
    let password = "pw-7f3a9c1e";
    db.create_user(&user, password).await;
    // MariaDB's grant for reading the bodies of procedures one did not
    // define (the post-load check reads `update_mirror`'s).
    db.grant_reading_procedures(&user).await;
    let work = tempfile::tempdir().unwrap();
    support::write_snapshot(
        &work.path().join("snap"),
        &[],
        &[r#"{"items":[{"product_id":1}]}"#],
    );
    let good = db.url_as(&user, password);
    let wrong = "wrong-2d9e4b";
    let bad = db.url_as(&user, wrong);
    for format in ["human", "json"] {
        for (url, succeeds) in [(&good, true), (&bad, false)] {
            let report = work.path().join(format!("report-{format}-{succeeds}.json"));
            let mut cmd = support::bin();
            cmd.current_dir(work.path())
                .args([
                    "sync",
                    "--from",
                    "snap",
                    "--post-load-sql",
                    "CALL update_mirror()",
                ])
                .arg("--report")
                .arg(&report)
                .env("DATABASE_URL", url)
                .env("RUST_LOG", "trace")
                .env("LOG_FORMAT", format);
            let out = run(cmd).await;
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.success(), succeeds, "{format}: {stderr}");
            if !succeeds {
                // The target is named as the user would know it, without
                // its password.
                let host = support::db::server_url()
                    .rsplit('@')
                    .next()
                    .unwrap()
                    .to_owned();
                assert!(
                    stderr.contains(&format!(
                        "connecting to the database mysql://{user}@{host}/{}: Access denied",
                        db.name
                    )),
                    "{stderr}"
                );
            }
            for text in [
                stderr.into_owned(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
            ] {
                assert!(
                    !text.contains(password) && !text.contains(wrong),
                    "{format}: a password leaked"
                );
            }
        }
    }
    // Cloud SQL's settings: the password comes from PASSWORD_DB only.
    let out = run({
        let mut cmd = support::bin();
        cmd.current_dir(work.path())
            .args([
                "sync",
                "--from",
                "snap",
                "--cloud-sql-socket-dir",
                "/nonexistent",
            ])
            .env("INSTANCE_DB", "acme:europe-west1:main")
            .env("USER_DB", &user)
            .env("PASSWORD_DB", password)
            .env("RUST_LOG", "trace");
        cmd
    })
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(!String::from_utf8_lossy(&out.stderr).contains(password));
    for file in support::files(work.path()) {
        let text = String::from_utf8_lossy(&std::fs::read(&file).unwrap()).into_owned();
        assert!(
            !text.contains(password) && !text.contains(wrong),
            "a password leaked into {}",
            file.display()
        );
    }
    assert_eq!(
        db.rows("raw_item_data").await.len(),
        1,
        "the run with the right password loaded"
    );
    db.drop_user(&user).await;
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bitcram_that_never_answers_stops_at_the_deadline_holding_no_row_lock() {
    let server = bitcram_answering_price_list([
        Reply::ok(PRICE_LIST_BODY).delayed(std::time::Duration::from_secs(20))
    ])
    .await;
    let db = TestDb::new().await;
    let before = seed_one_product(&db).await;
    let mut cmd = live_sync(&server, &db);
    cmd.env("BITCRAM_TOKEN", TOKEN).env("EXTRACT_TIMEOUT", "4s");
    let started = std::time::Instant::now();
    let run = tokio::task::spawn_blocking(move || cmd.output().unwrap());

    // While the price list is awaited, another writer of the table gets
    // its row at once: the run has deleted nothing and locks no row.
    while server.requests_to(PRICE_LIST).is_empty() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(15),
            "no price-list call"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let mut other = db.pool.acquire().await.unwrap();
    sqlx::query("SET SESSION innodb_lock_wait_timeout = 1")
        .execute(&mut *other)
        .await
        .unwrap();
    let updated = sqlx::query("UPDATE raw_item_data SET stock = stock WHERE id = '1'")
        .execute(&mut *other)
        .await;
    assert!(
        updated.is_ok(),
        "another writer waited for the run: {updated:?}"
    );
    drop(other);

    let out = run.await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "the extraction did not finish within 4 s (--extract-timeout); nothing was written"
        ),
        "{stderr}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(tables(&db).await, before);
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_rolls_back_and_says_so_in_one_error_entry() {
    for (format, signal, code) in [("json", libc::SIGTERM, 143), ("human", libc::SIGINT, 130)] {
        let server = bitcram_answering_price_list([
            Reply::ok(PRICE_LIST_BODY).delayed(std::time::Duration::from_secs(30))
        ])
        .await;
        let db = TestDb::new().await;
        let before = seed_one_product(&db).await;
        // The last run's report, which this run must not leave standing.
        let dir = tempfile::tempdir().unwrap();
        let report = dir.path().join("report.json");
        std::fs::write(
            &report,
            r#"{"outcome":"succeeded","run_id":"the-last-run"}"#,
        )
        .unwrap();
        let mut cmd = live_sync(&server, &db);
        cmd.arg("--report")
            .arg(&report)
            .env("BITCRAM_TOKEN", TOKEN)
            .env("LOG_FORMAT", format)
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let child = cmd.spawn().unwrap();
        let pid = child.id() as i32;
        let started = std::time::Instant::now();
        while server.requests_to(PRICE_LIST).is_empty() {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(15),
                "no price-list call"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        // SAFETY: kill has no memory preconditions; the child is ours.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
        let stopped_at = std::time::Instant::now();
        let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
            .await
            .unwrap();
        assert!(
            stopped_at.elapsed() < std::time::Duration::from_secs(10),
            "{format}: slow to stop"
        );
        assert_eq!(out.status.code(), Some(code), "{format}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let name = if signal == libc::SIGTERM {
            "SIGTERM"
        } else {
            "SIGINT"
        };
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("error: ") || l.contains(r#""severity":"ERROR""#))
            .collect();
        assert_eq!(errors.len(), 1, "{format}: {stderr}");
        assert!(
            errors[0].contains(&format!("stopped by {name} before the run finished")),
            "{format}: {stderr}"
        );
        assert_eq!(tables(&db).await, before, "{format}");
        let report: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
        assert_eq!(report["outcome"], "failed", "{format}: {report}");
        assert_ne!(report["run_id"], "the-last-run", "{format}: {report}");
        assert!(
            report["error"]
                .as_str()
                .unwrap()
                .starts_with("the run did not finish"),
            "{format}: {report}"
        );
        db.drop_now().await;
    }
}
