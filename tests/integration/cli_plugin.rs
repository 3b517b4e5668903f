//! `bitcram-sync plugin check` and `plugin run` through the real binary, with
//! their output and exit codes.

use crate::support;

#[test]
fn plugin_check_prints_the_identity_of_the_default_plugin() {
    let out = support::bin().args(["plugin", "check"]).output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "name: bitcram-transform");
    assert_eq!(lines[1], "version: 0.2.0");
    assert_eq!(lines[2], "contract: bitcram:transform@0.2.0");
    assert_eq!(
        lines[3],
        format!("sha256: {}", support::default_plugin_sha256())
    );
    assert_eq!(lines[4], "source: embedded");
}

#[test]
fn plugin_check_refuses_with_exit_code_3_and_one_line() {
    for (variant, reason) in [
        (
            "sneaky",
            "refused: it imports wasi:http/handler@0.3.0, which is outside the contract",
        ),
        (
            "future",
            "refused: it was built against bitcram:transform@0.3.0, but this host supports \
             bitcram:transform@0.1.0 or @0.2.0",
        ),
    ] {
        let out = support::bin()
            .args(["plugin", "check"])
            .arg(support::test_plugin(variant))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3), "{variant}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("error: "))
            .collect();
        assert_eq!(errors.len(), 1, "{stderr}");
        assert!(errors[0].contains(reason), "{variant}: {stderr}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn plugin_run_writes_json_lines_and_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let snapshot = dir.path().join("snap");
    support::write_snapshot(
        &snapshot,
        &[
            r#"{"items":[{"product_id":1,"product_balance":4.5},{"product_id":9,"product_balance":1}]}"#,
        ],
        &[r#"{"items":[{"product_id":1,"product_name":"Yerba"},{"product_id":2,"price":null}]}"#],
    );
    let rows = dir.path().join("rows.jsonl");
    let out = support::bin()
        .args(["plugin", "run", "--from"])
        .arg(&snapshot)
        .arg("--out")
        .arg(&rows)
        .arg(support::default_plugin_file())
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{stderr}");
    let text = std::fs::read_to_string(&rows).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines,
        vec![
            serde_json::json!({"id": "1", "stock": 4, "data": {"product_name": "Yerba"}}),
            serde_json::json!({"id": "2", "stock": 0, "data": {"price": null}}),
        ]
    );
    assert!(
        stderr.contains("rows=2 ") && stderr.contains("dropped_stock_items=1 "),
        "{stderr}"
    );
    assert!(stderr.contains("elapsed_ms="), "{stderr}");
}

#[test]
fn plugin_run_refuses_a_damaged_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    support::write_snapshot(
        dir.path(),
        &[r#"{"items":[]}"#],
        &[r#"{"items":[{"product_id":1}]}"#],
    );
    std::fs::write(
        dir.path().join("price-list.0.json"),
        br#"{"items":[{"product_id":2}]}"#,
    )
    .unwrap();
    let out = support::bin()
        .args(["plugin", "run", "--from"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("price-list.0.json") && stderr.contains("damaged"),
        "{stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "no rows are written from a damaged snapshot"
    );
}

#[test]
fn plugin_run_reports_bad_input_with_the_product_and_field() {
    let dir = tempfile::tempdir().unwrap();
    support::write_snapshot(
        dir.path(),
        &[r#"{"items":[{"product_id":7}]}"#],
        &[r#"{"items":[]}"#],
    );
    let out = support::bin()
        .args(["plugin", "run", "--from"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let error = stderr.lines().find(|l| l.starts_with("error: ")).unwrap();
    assert!(
        error.contains(
            "invalid item in the stock body, item 0, product 7, field `product_balance`: missing"
        ),
        "{error}"
    );
}

#[test]
fn usage_errors_exit_with_2() {
    let out = support::bin().args(["plugin", "run"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the following required arguments were not provided")
            && stderr.contains("--from <SNAPSHOT_DIR>"),
        "{stderr}"
    );
    let out = support::bin()
        .args(["plugin", "check", "--plugin-timeout", "soon"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invalid value 'soon' for '--plugin-timeout <DURATION>'"),
        "{stderr}"
    );
}

#[test]
fn sigterm_during_a_compile_stops_at_once_not_after_it() {
    use std::time::Instant;

    // A cold compile of the default component, to compare with.
    let started = Instant::now();
    let out = support::bin()
        .args(["plugin", "check", "--no-plugin-cache"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let compile = started.elapsed();

    let child = support::bin()
        .args(["plugin", "check", "--no-plugin-cache"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(compile / 10);
    // SAFETY: kill has no memory preconditions; the child is ours.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let signalled = Instant::now();
    let out = child.wait_with_output().unwrap();
    let stopping = signalled.elapsed();
    assert_eq!(out.status.code(), Some(143));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("error: stopped by SIGTERM before the run finished"),
        "{stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Stopping does not wait for the rest of the compile (a tenth of it has
    // run): measured against the compile itself, in the same run.
    assert!(
        stopping < compile / 2,
        "stopping took {stopping:?}, a whole compile {compile:?}"
    );
}
