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
    let PluginError::Trapped { plugin, cause } = &err else {
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
    let PluginError::Trapped { plugin, cause } = &err else {
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
    } = &err
    else {
        panic!("expected a crash, got {err}");
    };
    assert!(plugin.starts_with("test-panic "), "{plugin}");
    assert!(what.contains("unreachable"), "{what}");
}
