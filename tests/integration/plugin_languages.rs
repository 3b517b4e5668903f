//! Transforms in Python (componentize-py) and JavaScript (componentize-js):
//! the examples reproduce the default component's golden cases; a plugin in
//! each language that looks for files, sockets and its environment finds
//! none; what it writes reaches the log; a Python exception ends the error
//! message with its traceback. The components are built by
//! `plugins/examples/build.sh` with pinned toolchains (see `support`).

use crate::support::nosy::{Listening, NosyRun, assert_markers_logged, run_nosy};
use crate::support::{self, example_plugin};

#[test]
fn the_python_and_javascript_examples_pass_every_golden_case() {
    let cases = support::golden_case_names().len();
    for (example, name) in [
        ("python-transform", "python-transform 0.1.0"),
        ("javascript-transform", "javascript-transform 0.2.0"),
    ] {
        let out = support::bin()
            .args(["plugin", "test"])
            .arg(example_plugin(example))
            .arg("--cases")
            .arg(support::golden_cases_dir())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{example}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout
                .lines()
                .last()
                .unwrap()
                .starts_with(&format!("{cases} passed, 0 failed: {name} (sha256 ")),
            "{example}: {stdout}"
        );
    }
}

#[test]
fn a_python_plugin_finds_no_host_file_socket_environment_or_input() {
    let listening = Listening::new();
    let NosyRun { seen, log, code } =
        run_nosy(&example_plugin("python-nosy"), &listening.page_member());
    assert_eq!(code, Some(0), "{log}");
    let seen = seen.expect("a row");
    assert_eq!(seen["env"], serde_json::json!([]), "{seen}");
    assert_eq!(seen["args"], serde_json::json!([]), "{seen}");
    assert_eq!(seen["stdin"], "ok: ", "{seen}");
    // No directory is preopened; every address is refused; name lookup is off.
    for (what, error) in [
        ("read", "error: FileNotFoundError: "),
        ("list", "error: FileNotFoundError: "),
        ("create", "error: FileNotFoundError: "),
        ("connect", "error: PermissionError: "),
        ("udp", "error: PermissionError: "),
        ("lookup", "error: gaierror: "),
    ] {
        let outcome = seen[what].as_str().unwrap_or_default();
        assert!(outcome.starts_with(error), "{what}: {outcome}");
    }
    listening.assert_nothing_arrived();
    assert_markers_logged(&log, "test-python-nosy");
}

#[test]
fn a_javascript_plugin_has_no_file_socket_or_environment_api() {
    let NosyRun { seen, log, code } = run_nosy(&example_plugin("javascript-nosy"), "");
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(
        seen.expect("a row"),
        serde_json::json!({"process": "undefined", "require": "undefined", "Deno": "undefined", "fetch": "function"})
    );
    assert_markers_logged(&log, "test-javascript-nosy");
    // The engine's `fetch` has no wasi:http under it: calling it stops the
    // plugin, and nothing reaches the address.
    let listening = Listening::new();
    let NosyRun { seen, log, code } = run_nosy(
        &example_plugin("javascript-nosy"),
        &format!(r#"{},"fetch":true"#, listening.page_member()),
    );
    assert_eq!(code, Some(1), "{log}");
    assert!(seen.is_none());
    assert!(log.contains("was stopped: it crashed"), "{log}");
    listening.assert_nothing_arrived();
}

#[test]
fn a_python_exception_ends_the_error_message_with_its_traceback() {
    let NosyRun { seen, log, code } = run_nosy(&example_plugin("python-nosy"), r#","raise":true"#);
    assert_eq!(code, Some(1), "{log}");
    assert!(seen.is_none());
    let error = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["severity"] == "ERROR")
        .unwrap_or_else(|| panic!("no error entry: {log}"));
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("plugin test-python-nosy 0.0.0"),
        "{message}"
    );
    assert!(
        message.contains(" | Traceback (most recent call last): | ")
            && message.contains(" | ValueError: nosy was asked to fail | "),
        "{message}"
    );
}
