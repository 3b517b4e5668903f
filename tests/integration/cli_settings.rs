//! What README.md says of the binary's settings and surface, through the
//! binary: the image's entrypoint, `db init --print`, `--help`, the log
//! format, the SQLite sink's file, and every setting read from the
//! environment or a `.env` file, each shown by its effect.

use std::path::Path;
use std::process::{Command, Output};

use crate::support;

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[track_caller]
fn assert_success(out: &Output) {
    assert!(out.status.success(), "{}", stderr(out));
}

/// The JSON array of a `Dockerfile` instruction (`ENTRYPOINT`, `CMD`).
fn dockerfile_array(instruction: &str) -> Vec<String> {
    let text = std::fs::read_to_string(support::workspace().join("Dockerfile")).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{instruction} ")))
        .unwrap_or_else(|| panic!("the Dockerfile has no {instruction}"));
    serde_json::from_str(&line[instruction.len()..]).unwrap()
}

#[test]
fn the_images_entrypoint_takes_the_subcommand_with_sync_as_its_default() {
    let entrypoint = dockerfile_array("ENTRYPOINT");
    assert_eq!(entrypoint, ["/usr/local/bin/bitcram-sync"]);
    let cmd = dockerfile_array("CMD");
    assert_eq!(cmd, ["sync"]);
    // What the job runs with no --args: a sync (its help, here).
    let out = support::bin().args(&cmd).arg("--help").output().unwrap();
    assert_success(&out);
    assert!(stdout(&out).contains("Run one sync"), "{}", stdout(&out));
    // The README's `--args=db,init` replaces CMD: `bitcram-sync db init`.
    let out = support::bin()
        .args(["db", "init", "--print"])
        .output()
        .unwrap();
    assert_success(&out);
}

#[test]
fn db_init_print_shows_both_statements_in_the_targets_dialect() {
    let out = support::bin()
        .args(["db", "init", "--print"])
        .output()
        .unwrap();
    assert_success(&out);
    let text = stdout(&out);
    let statements: Vec<&str> = text
        .split(";\n")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(statements.len(), 2, "{text}");
    assert!(statements[0].starts_with("CREATE TABLE IF NOT EXISTS `raw_item_data` ("));
    assert!(statements[0].contains("data JSON NOT NULL"));
    assert!(statements[1].starts_with("CREATE TABLE IF NOT EXISTS `bitcram_sync_state` ("));

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("x.db").display());
    let out = support::bin()
        .args(["db", "init", "--print", "--database-url", &url])
        .output()
        .unwrap();
    assert_success(&out);
    let text = stdout(&out);
    assert!(
        text.starts_with("CREATE TABLE IF NOT EXISTS \"raw_item_data\" (")
            && text.contains("CHECK (json_valid(data))")
            && text.contains("\"bitcram_sync_state\""),
        "{text}"
    );
    assert!(!dir.path().join("x.db").exists(), "--print touches nothing");
}

/// The flags listed under one heading of a `--help`.
fn flags_under(help: &str, heading: &str) -> Vec<String> {
    let mut lines = help
        .lines()
        .skip_while(|l| *l != format!("{heading}:"))
        .skip(1);
    let mut flags = Vec::new();
    for line in lines.by_ref() {
        if !line.starts_with(' ') && !line.is_empty() {
            break;
        }
        if let Some(flag) = line.trim_start().strip_prefix("--") {
            flags.push(format!("--{}", flag.split([' ', '=']).next().unwrap()));
        }
    }
    flags
}

#[test]
fn help_groups_the_flags_and_names_what_has_no_flag() {
    let out = support::bin().args(["sync", "--help"]).output().unwrap();
    let help = stdout(&out);
    let transform = flags_under(&help, "Transform");
    for flag in [
        "--plugin",
        "--plugin-sha256",
        "--plugin-timeout",
        "--plugin-memory-mb",
        "--plugin-cache",
        "--no-plugin-cache",
    ] {
        assert!(
            transform.iter().any(|f| f == flag),
            "{flag} not under Transform: {transform:?}"
        );
    }
    let load = flags_under(&help, "Load");
    assert!(load.iter().all(|f| !f.contains("plugin")), "{load:?}");
    assert!(
        help.contains("http:// to this\n") || help.contains("http:// to this machine"),
        "--bitcram-url says what plain http is allowed to:\n{help}"
    );
    assert!(help.contains("127.0.0.1"), "{help}");

    let out = support::bin()
        .args(["snapshot", "--help"])
        .output()
        .unwrap();
    let help = stdout(&out);
    for needle in [
        "BITCRAM_TOKEN",
        "SECRET_MANAGER_ENDPOINT",
        "LOG_FORMAT",
        "Exit codes:",
        "2  configuration or usage error",
    ] {
        assert!(
            help.contains(needle),
            "snapshot --help lacks {needle:?}:\n{help}"
        );
    }
}

#[test]
fn logs_are_plain_when_redirected_and_every_json_line_has_the_run_id() {
    let out = support::bin()
        .args(["plugin", "check"])
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    assert_success(&out);
    let err = stderr(&out);
    assert!(err.contains("plugin loaded"), "{err}");
    assert!(
        !err.contains('\u{1b}'),
        "colour codes in a redirected log: {err:?}"
    );

    let out = support::bin()
        .args(["plugin", "check"])
        .env("RUST_LOG", "debug")
        .env("LOG_FORMAT", "json")
        .output()
        .unwrap();
    assert_success(&out);
    let lines: Vec<serde_json::Value> = stderr(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!lines.is_empty());
    let run_id = lines[0]["run_id"]
        .as_str()
        .expect("the first line has the run id");
    assert!(lines.iter().all(|l| l["run_id"] == run_id), "{lines:?}");
}

#[test]
fn a_log_format_that_is_neither_json_nor_human_is_a_usage_error() {
    let out = support::bin()
        .args(["plugin", "check"])
        .env("LOG_FORMAT", "bogus")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out).trim_end(),
        "error: LOG_FORMAT is \"bogus\"; use `json` or `human`"
    );
    assert!(out.stdout.is_empty());
}

/// A snapshot of `ids` (no stock) in `dir`.
fn snapshot(dir: &Path, ids: &[u64]) {
    crate::support::sync_run::snapshot(dir, ids, &[]);
}

#[test]
fn sync_never_creates_a_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    snapshot(&dir.path().join("snap"), &[1]);
    let missing = dir.path().join("missing.db");
    let out = support::bin()
        .args(["sync", "--from"])
        .arg(dir.path().join("snap"))
        .arg("--database-url")
        .arg(format!("sqlite://{}", missing.display()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!(
            "connecting to the database sqlite://{}: the file does not exist",
            missing.display()
        )),
        "{}",
        stderr(&out)
    );
    assert!(!missing.exists(), "the failed sync left a file behind");
}

/// A directory with a SQLite database that `db init` created, a snapshot
/// of `ids`, and a `post_load_log` table the post-load statement fills.
struct Local {
    dir: tempfile::TempDir,
    url: String,
}

impl Local {
    async fn new(ids: &[u64]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("local.db").display());
        let out = support::bin()
            .args(["db", "init", "--database-url", &url])
            .output()
            .unwrap();
        assert_success(&out);
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        sqlx::raw_sql("CREATE TABLE post_load_log (n INTEGER)")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        snapshot(&dir.path().join("snap"), ids);
        Self { dir, url }
    }

    /// `sync --from snap` in the directory, with only `.env` and `env` as
    /// settings.
    fn sync(&self, dot_env: &str, env: &[(&str, &str)]) -> Output {
        std::fs::write(self.dir.path().join(".env"), dot_env).unwrap();
        let mut cmd: Command = support::bin();
        cmd.current_dir(self.dir.path())
            .args(["sync", "--from", "snap"]);
        for (name, value) in env {
            cmd.env(name, value);
        }
        cmd.output().unwrap()
    }

    async fn count(&self, sql: &str) -> i64 {
        let pool = sqlx::SqlitePool::connect(&self.url).await.unwrap();
        let n = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        n
    }

    fn report(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.dir.path().join("report.json")).unwrap())
            .unwrap()
    }
}

#[tokio::test]
async fn the_load_settings_work_from_a_dot_env_file_and_the_environment_wins() {
    let local = Local::new(&(1..=10).collect::<Vec<_>>()).await;
    let dot_env = format!(
        "DATABASE_URL={}\nSYNC_MODE=diff\nPOST_LOAD_SQL=\"INSERT INTO post_load_log VALUES (1)\"\n\
         POST_LOAD_WHEN=always\nMAX_DELETE_PERCENT=50\nREPORT_FILE=report.json\nDRY_RUN=1\n",
        local.url
    );
    // The environment wins over .env: DRY_RUN=no here.
    let out = local.sync(&dot_env, &[("DRY_RUN", "no")]);
    assert_success(&out);
    let report = local.report();
    assert_eq!(report["mode"], "diff");
    assert_eq!(report["dry_run"], false);
    assert_eq!(report["rows"]["inserted"], 10);
    assert_eq!(local.count("SELECT COUNT(*) FROM raw_item_data").await, 10);
    assert_eq!(local.count("SELECT COUNT(*) FROM post_load_log").await, 1);

    // Unchanged input in diff mode: POST_LOAD_WHEN=always runs the statement.
    let out = local.sync(&dot_env, &[("DRY_RUN", "off")]);
    assert_success(&out);
    let report = local.report();
    assert_eq!(report["rows"]["unchanged"], 10);
    assert_eq!(report["rows"]["post_load_statements"], 1);
    assert_eq!(local.count("SELECT COUNT(*) FROM post_load_log").await, 2);

    // .env's DRY_RUN=1: nothing is written.
    snapshot(
        &local.dir.path().join("snap"),
        &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
    );
    let out = local.sync(&dot_env, &[]);
    assert_success(&out);
    assert!(
        stdout(&out).starts_with("dry run: 10 rows now, 11 in the new catalog"),
        "{}",
        stdout(&out)
    );
    assert_eq!(local.report()["dry_run"], true);
    assert_eq!(local.report()["rows"]["dry_run"], true);
    assert_eq!(local.count("SELECT COUNT(*) FROM raw_item_data").await, 10);

    // MAX_DELETE_PERCENT=50 refuses removing 6 of 10; ALLOW_SHRINK=yes lifts it.
    snapshot(&local.dir.path().join("snap"), &[1, 2, 3, 4]);
    let out = local.sync(&dot_env, &[("DRY_RUN", "0")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("(60.0%, more than --max-delete-percent 50)"),
        "{}",
        stderr(&out)
    );
    assert_eq!(local.report()["outcome"], "failed");
    assert_eq!(local.count("SELECT COUNT(*) FROM raw_item_data").await, 10);
    let out = local.sync(&dot_env, &[("DRY_RUN", "0"), ("ALLOW_SHRINK", "yes")]);
    assert_success(&out);
    assert_eq!(local.count("SELECT COUNT(*) FROM raw_item_data").await, 4);
}

#[tokio::test]
async fn switches_take_the_words_people_write() {
    let local = Local::new(&[1, 2]).await;
    let dot_env = format!("DATABASE_URL={}\nPOST_LOAD_SQL=\n", local.url);
    for yes in ["1", "true", "yes", "on", "TRUE", "Yes"] {
        let out = local.sync(&dot_env, &[("DRY_RUN", yes)]);
        assert_success(&out);
        assert!(stdout(&out).starts_with("dry run: "), "DRY_RUN={yes}");
    }
    assert_eq!(local.count("SELECT COUNT(*) FROM raw_item_data").await, 0);
    for no in ["0", "false", "no", "off"] {
        let out = local.sync(&dot_env, &[("DRY_RUN", no)]);
        assert_success(&out);
        assert!(stdout(&out).is_empty(), "DRY_RUN={no}: {}", stdout(&out));
    }
    assert_eq!(local.count("SELECT COUNT(*) FROM raw_item_data").await, 2);
    let out = local.sync(&dot_env, &[("DRY_RUN", "perhaps")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("invalid value 'perhaps'"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn the_transform_settings_work_from_the_environment() {
    let local = Local::new(&[1, 2]).await;
    let dot_env = format!(
        "DATABASE_URL={}\nPOST_LOAD_SQL=\nREPORT_FILE=report.json\n",
        local.url
    );
    let plugin = support::default_plugin_file();
    let plugin_text = plugin.display().to_string();

    // TRANSFORM_PLUGIN picks the component by path; TRANSFORM_PLUGIN_SHA256
    // pins it.
    let sha256 = support::default_plugin_sha256();
    let out = local.sync(
        &dot_env,
        &[
            ("TRANSFORM_PLUGIN", &plugin_text),
            ("TRANSFORM_PLUGIN_SHA256", &sha256),
        ],
    );
    assert_success(&out);
    assert_eq!(local.report()["plugin"]["source"], plugin_text);
    let wrong = "0".repeat(64);
    let out = local.sync(
        &dot_env,
        &[
            ("TRANSFORM_PLUGIN", &plugin_text),
            ("TRANSFORM_PLUGIN_SHA256", &wrong),
        ],
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains(&format!("sha256 is {sha256}")) && stderr(&out).contains(&wrong),
        "{}",
        stderr(&out)
    );

    // PLUGIN_TIMEOUT and PLUGIN_MEMORY_MB bound it.
    let spin = support::test_plugin("spin").display().to_string();
    let out = local.sync(
        &dot_env,
        // Enough for the gate's call of info() on a loaded machine; the
        // plugin's push then spins past it.
        &[("TRANSFORM_PLUGIN", &spin), ("PLUGIN_TIMEOUT", "500ms")],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("ran past its time limit of 500 ms (--plugin-timeout)"),
        "{}",
        stderr(&out)
    );
    let hog = support::test_plugin("hog").display().to_string();
    let out = local.sync(
        &dot_env,
        &[("TRANSFORM_PLUGIN", &hog), ("PLUGIN_MEMORY_MB", "16")],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("more than its memory limit of 16 MiB (--plugin-memory-mb)"),
        "{}",
        stderr(&out)
    );
    assert_eq!(local.count("SELECT COUNT(*) FROM raw_item_data").await, 2);

    // PLUGIN_CACHE_DIR is where compiled components go; PLUGIN_NO_CACHE=1
    // keeps none.
    let cache = local.dir.path().join("cache");
    let cache_text = cache.display().to_string();
    let out = local.sync(
        &dot_env,
        &[("PLUGIN_CACHE_DIR", &cache_text), ("PLUGIN_NO_CACHE", "1")],
    );
    assert_success(&out);
    assert!(
        support::files(&cache).is_empty(),
        "{:?}",
        support::files(&cache)
    );
    let out = local.sync(&dot_env, &[("PLUGIN_CACHE_DIR", &cache_text)]);
    assert_success(&out);
    let entries = support::files(&cache);
    assert_eq!(entries.len(), 1, "{entries:?}");
    let name = entries[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(
        name.starts_with(&format!("{sha256}-")) && name.ends_with(".cwasm"),
        "{name}"
    );
}

#[test]
fn bitcram_allow_insecure_http_lets_a_plain_http_url_past_its_check() {
    // No request is made: with the variable, the run gets past the URL's
    // check and stops at the next one, the plugin's pinned sha256.
    let base = |cmd: &mut Command| {
        cmd.args(["snapshot", "--out", "unused"])
            .env("URL_BITCRAM", "http://bitcram.example:8080")
            .env("CHECKOUT", "3")
            .env("BITCRAM_TOKEN", "tok");
    };
    let mut cmd = support::bin();
    base(&mut cmd);
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("is plain http:// to a host that is not a loopback address"),
        "{}",
        stderr(&out)
    );

    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("x.db").display());
    let mut cmd = support::bin();
    cmd.args(["sync", "--database-url", &db, "--post-load-sql", ""])
        .env("URL_BITCRAM", "http://bitcram.example:8080")
        .env("CHECKOUT", "3")
        .env("BITCRAM_TOKEN", "tok")
        .env("BITCRAM_ALLOW_INSECURE_HTTP", "yes")
        .env("TRANSFORM_PLUGIN_SHA256", "0".repeat(64));
    std::fs::write(dir.path().join("x.db"), b"").unwrap();
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(!stderr(&out).contains("plain http://"), "{}", stderr(&out));
}

#[tokio::test]
async fn a_blank_setting_means_its_default() {
    let local = Local::new(&[1, 2]).await;
    let dot_env = format!(
        "DATABASE_URL={}\nPOST_LOAD_SQL=\nREPORT_FILE=report.json\n",
        local.url
    );
    let out = local.sync(
        &dot_env,
        &[
            ("SYNC_MODE", ""),
            ("PLUGIN_CACHE_DIR", ""),
            ("PLUGIN_TIMEOUT", " "),
            ("MAX_DELETE_PERCENT", ""),
            ("DRY_RUN", ""),
        ],
    );
    assert_success(&out);
    let report = local.report();
    assert_eq!(report["mode"], "replace");
    assert_eq!(report["dry_run"], false);
    assert_eq!(
        report["rows"]["post_load_statements"], 0,
        "an empty POST_LOAD_SQL runs none"
    );
}

#[tokio::test]
async fn post_load_sql_splits_outside_quotes_and_a_flag_value_is_taken_whole() {
    let local = Local::new(&[1, 2]).await;
    let dot_env = format!("DATABASE_URL={}\nREPORT_FILE=report.json\n", local.url);
    let mut cmd = support::bin();
    cmd.current_dir(local.dir.path())
        .args(["sync", "--from", "snap", "--database-url", &local.url])
        .args([
            "--post-load-sql",
            "INSERT INTO post_load_log VALUES (length('a;b'))",
        ])
        .args(["--report", "report.json"]);
    let out = cmd.output().unwrap();
    assert_success(&out);
    assert_eq!(local.report()["rows"]["post_load_statements"], 1);
    assert_eq!(local.count("SELECT SUM(n) FROM post_load_log").await, 3);

    let out = local.sync(
        &dot_env,
        &[(
            "POST_LOAD_SQL",
            "INSERT INTO post_load_log VALUES (length('x;y;z')); INSERT INTO post_load_log VALUES (10)",
        )],
    );
    assert_success(&out);
    assert_eq!(local.report()["rows"]["post_load_statements"], 2);
    assert_eq!(
        local.count("SELECT SUM(n) FROM post_load_log").await,
        3 + 5 + 10
    );
}
