//! The sandbox: a plugin that loops is stopped by its time budget, one that
//! allocates without bound by its memory cap, one that panics is reported as
//! a crash; each names the plugin, and nothing reaches the sink.

use std::time::{Duration, Instant};

use bitcram_sync::plugin::{PluginError, PluginLimits, PluginSource, TrapCause};
use bitcram_sync::transform::TransformFailure;

use crate::support;

async fn run_variant(variant: &str, limits: PluginLimits) -> (PluginError, Duration) {
    let plugin = support::host(limits)
        .load(&PluginSource::Path(support::test_plugin(variant)), None)
        .await
        .unwrap();
    let started = Instant::now();
    let err = support::transform(&plugin, &[r#"{"items":[]}"#], &[r#"{"items":[]}"#])
        .await
        .expect_err("a misbehaving plugin must fail");
    match err {
        TransformFailure::Plugin(e) => (e, started.elapsed()),
        other => panic!("expected a plugin failure, got {other}"),
    }
}

#[tokio::test]
async fn a_plugin_that_loops_forever_is_stopped_at_its_deadline() {
    let limits = PluginLimits {
        timeout: Duration::from_millis(300),
        ..PluginLimits::default()
    };
    let (err, elapsed) = run_variant("spin", limits).await;
    let PluginError::Trapped { plugin, cause, .. } = &err else {
        panic!("expected a trap, got {err}");
    };
    assert_eq!(*cause, TrapCause::Deadline(Duration::from_millis(300)));
    assert!(plugin.starts_with("test-spin 0.0.0 (sha256 "), "{plugin}");
    assert!(err.to_string().contains("time limit of 300 ms"), "{err}");
    // Generous: the point is that it stopped at all, not how precisely.
    assert!(
        elapsed < Duration::from_secs(20),
        "stopped after {elapsed:?}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_spinning_plugin_does_not_starve_the_async_runtime() {
    // On a one-thread runtime, a timer task must still run while the plugin spins.
    let ticks = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counter = ticks.clone();
    let ticker = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(10)).await;
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    });
    let limits = PluginLimits {
        timeout: Duration::from_millis(500),
        ..PluginLimits::default()
    };
    let (err, _) = run_variant("spin", limits).await;
    ticker.abort();
    assert!(
        matches!(
            err,
            PluginError::Trapped {
                cause: TrapCause::Deadline(_),
                ..
            }
        ),
        "{err}"
    );
    assert!(
        ticks.load(std::sync::atomic::Ordering::Relaxed) > 3,
        "the runtime was starved"
    );
}

#[tokio::test]
async fn a_plugin_that_allocates_without_bound_is_stopped_at_its_memory_cap() {
    let limits = PluginLimits {
        memory_bytes: 64 * 1024 * 1024,
        ..PluginLimits::default()
    };
    let (err, _) = run_variant("hog", limits).await;
    let PluginError::Trapped { plugin, cause, .. } = &err else {
        panic!("expected a trap, got {err}");
    };
    assert_eq!(
        *cause,
        TrapCause::Memory {
            limit_bytes: 64 * 1024 * 1024
        }
    );
    assert!(plugin.starts_with("test-hog "), "{plugin}");
    assert!(err.to_string().contains("memory limit of 64 MiB"), "{err}");
}

#[tokio::test]
async fn a_plugin_that_panics_is_reported_as_a_crash() {
    let (err, _) = run_variant("panic", PluginLimits::default()).await;
    let PluginError::Trapped {
        plugin,
        cause: TrapCause::Trap(what),
        output,
    } = &err
    else {
        panic!("expected a crash, got {err}");
    };
    assert!(plugin.starts_with("test-panic "), "{plugin}");
    assert!(what.contains("unreachable"), "{what}");
    // Not only `unreachable`: the message ends with what the plugin wrote
    // to its stderr as it went down, on one line.
    assert!(
        output.starts_with("; its last output: thread '<unnamed>' ")
            && output.contains(" panicked at plugins/test-plugins/src/lib.rs:")
            && output
                .contains(" | test plugin panicked on purpose | note: run with `RUST_BACKTRACE=1`"),
        "{output}"
    );
    assert!(err.to_string().ends_with(output.as_str()), "{err}");
    assert!(!err.to_string().contains('\n'), "{err}");
}

#[test]
fn the_sandbox_shows_a_plugin_no_environment_arguments_stdin_files_or_network() {
    use crate::support::nosy::{Listening, assert_markers_logged, run_nosy};

    // Where the plugin is told to connect and send: the test listens.
    let listening = Listening::new();
    let run = run_nosy(&support::test_plugin("nosy"), &listening.page_member());
    assert_eq!(run.code, Some(0), "{}", run.log);
    let seen = run.seen.expect("a row");
    for (what, expected) in [
        ("env", serde_json::json!([])),
        ("args", serde_json::json!([])),
    ] {
        assert_eq!(seen[what], expected, "{what}: {seen}");
    }
    assert_eq!(seen["stdin"], "", "{seen}");
    // No working directory is given: the guest's standard library says `/`,
    // a directory in which it can open nothing.
    assert_eq!(seen["cwd"], "/", "{seen}");
    // No directory is preopened; every address is refused; name lookup is off.
    for (what, error) in [
        ("read", "No such file or directory"),
        ("list", "No such file or directory"),
        ("create", "No such file or directory"),
        ("connect", "Permission denied"),
        ("udp", "Permission denied"),
        ("lookup", "failed to lookup address information"),
    ] {
        let outcome = seen[what].as_str().unwrap_or_default();
        assert!(
            outcome.starts_with(&format!("error: {error}")),
            "{what}: {outcome}"
        );
    }
    listening.assert_nothing_arrived();
    // The plugin's stdout and stderr reach the host's log, tagged with its
    // name and the stream, never the host's own stdout.
    assert_markers_logged(&run.log, "test-nosy");
}

#[tokio::test]
async fn the_time_budget_is_summed_over_the_calls_of_one_transform() {
    // Three pushes of 200 ms each: no single call reaches 500 ms, together
    // they pass it.
    let limits = PluginLimits {
        timeout: Duration::from_millis(500),
        ..PluginLimits::default()
    };
    let (err, _) = run_variant("slow", limits).await;
    assert!(
        matches!(
            err,
            PluginError::Trapped {
                cause: TrapCause::Deadline(_),
                ..
            }
        ),
        "{err}"
    );
    // With room for all three, the same plugin finishes.
    let plugin = support::host(PluginLimits {
        timeout: Duration::from_secs(10),
        ..PluginLimits::default()
    })
    .load(&PluginSource::Path(support::test_plugin("slow")), None)
    .await
    .unwrap();
    support::transform(&plugin, &[r#"{"items":[]}"#], &[r#"{"items":[]}"#])
        .await
        .unwrap();
}

#[test]
fn the_plugins_log_lines_are_tagged_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let snapshot = dir.path().join("snap");
    support::write_snapshot(
        &snapshot,
        &[r#"{"items":[{"product_id":1,"product_balance":null}]}"#],
        &[r#"{"items":[{"product_id":1}]}"#],
    );
    let out = support::bin()
        .args(["plugin", "run", "--from"])
        .arg(&snapshot)
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success());
    let warnings: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|l: &serde_json::Value| l["severity"] == "WARNING")
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0]["plugin"], "bitcram-transform");
    assert_eq!(
        warnings[0]["message"],
        "1 stock items had a null product_balance; loaded as 0"
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        r#"{"id":"1","stock":0,"data":{}}"#,
        "the null balance is loaded as 0"
    );
}

#[test]
fn a_plugin_error_ends_with_what_the_plugin_last_wrote() {
    let dir = tempfile::tempdir().unwrap();
    support::write_snapshot(dir.path(), &[], &["1\t{}\n#fail no warehouse in sight\n"]);
    let out = support::bin()
        .args(["plugin", "run"])
        .arg(support::test_plugin("rogue"))
        .arg("--from")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Its error, then its last lines of stderr, the unfinished one too.
    assert!(
        crate::support::sync_run::error_line(&out).ends_with(
            "returned an error: no warehouse in sight; its last output: rogue: giving up on \
             this page | rogue: no warehouse in sight"
        ),
        "{stderr}"
    );
    // Under the tests' RUST_LOG=warn, its stderr lines are in the log too.
    assert!(
        stderr.lines().any(|l| l.contains("WARN")
            && l.contains("plugin=\"test-rogue\"")
            && l.contains("rogue: giving up on this page")),
        "{stderr}"
    );
}
