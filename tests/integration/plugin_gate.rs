//! The gate: what is refused before a plugin runs, with one line saying what
//! was expected and what was found; the sha256 pin; the compile cache.

use bitcram_sync::plugin::{
    CacheOutcome, CompileCache, PluginError, PluginHost, PluginLimits, PluginSource,
};

use crate::support;

#[track_caller]
fn refusal(result: Result<bitcram_sync::plugin::Plugin, PluginError>) -> String {
    match result {
        Err(e @ PluginError::Refused { .. }) => {
            let message = e.to_string();
            assert!(!message.contains('\n'), "a refusal is one line: {message}");
            message
        }
        Err(other) => panic!("expected a refusal, got: {other}"),
        Ok(plugin) => panic!("expected a refusal, but {} loaded", plugin.identity()),
    }
}

#[tokio::test]
async fn the_default_plugin_passes_and_reports_itself() {
    let plugin = support::load(PluginSource::Embedded).await.unwrap();
    let id = plugin.identity();
    assert_eq!(
        (id.name.as_str(), id.version.as_str()),
        ("bitcram-transform", "0.2.0")
    );
    assert_eq!(id.package_version, "0.2.0");
    assert_eq!(id.sha256, support::default_plugin_sha256());
    // Loading the same bytes from a file gives the same identity but the path.
    let from_file = support::load(PluginSource::Path(support::default_plugin_file()))
        .await
        .unwrap();
    assert_eq!(from_file.identity().sha256, id.sha256);
    assert!(
        from_file
            .identity()
            .source
            .ends_with("bitcram-transform.wasm")
    );
}

#[tokio::test]
async fn a_file_that_is_not_wasm_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plugin.wasm");
    std::fs::write(&path, b"#!/bin/sh\necho hi\n").unwrap();
    let message = refusal(support::load(PluginSource::Path(path)).await);
    assert!(message.contains("not a WebAssembly file"), "{message}");
}

#[tokio::test]
async fn a_missing_file_is_refused_naming_it() {
    let message = refusal(support::load(PluginSource::Path("/nonexistent/x.wasm".into())).await);
    assert!(
        message.contains("/nonexistent/x.wasm") && message.contains("cannot read"),
        "{message}"
    );
}

#[tokio::test]
async fn a_core_module_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("core.wasm");
    // The smallest valid core module: magic and version 1, no sections.
    std::fs::write(&path, b"\0asm\x01\0\0\0").unwrap();
    let message = refusal(support::load(PluginSource::Path(path)).await);
    assert!(
        message.contains("core WebAssembly module, not a component"),
        "{message}"
    );
}

#[tokio::test]
async fn a_plugin_built_against_another_contract_version_is_refused() {
    let message = refusal(support::load(PluginSource::Path(support::test_plugin("future"))).await);
    assert!(
        message.contains("built against bitcram:transform@0.3.0")
            && message.contains("supports bitcram:transform@0.1.0 or @0.2.0"),
        "{message}"
    );
}

#[tokio::test]
async fn a_component_for_another_world_or_none_is_refused_saying_what_it_exports() {
    let message = refusal(support::load(PluginSource::Path(support::test_plugin("alien"))).await);
    assert!(
        message.ends_with(
            "refused: it exports test:alien/iface, not bitcram:transform/transformer@0.1.0 or \
             @0.2.0: it is a component for another world"
        ),
        "{message}"
    );
    // The smallest component there is: no imports, no exports.
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.wasm");
    std::fs::write(&empty, b"\0asm\x0d\x00\x01\x00").unwrap();
    let message = refusal(support::load(PluginSource::Path(empty)).await);
    assert!(
        message.ends_with(
            "refused: it exports no interface; expected bitcram:transform/transformer@0.1.0 or @0.2.0"
        ),
        "{message}"
    );
}

#[tokio::test]
async fn a_plugin_importing_a_capability_outside_the_contract_is_refused() {
    let message = refusal(support::load(PluginSource::Path(support::test_plugin("sneaky"))).await);
    assert!(
        message.ends_with(
            "refused: it imports wasi:http/handler@0.3.0, which is outside the contract (a \
             transform may import only bitcram:transform/log and wasi:cli, wasi:io, wasi:clocks, \
             wasi:random, wasi:filesystem, wasi:sockets, which the host provides empty; wasi:http \
             and anything else is refused)"
        ),
        "{message}"
    );
}

#[tokio::test]
async fn the_sha256_pin_refuses_any_other_file() {
    let host = support::host(PluginLimits::default());
    let default_sha = support::load(PluginSource::Embedded)
        .await
        .unwrap()
        .identity()
        .sha256
        .clone();
    let other = PluginSource::Path(support::test_plugin("panic"));
    let message = refusal(host.load(&other, Some(&default_sha)).await);
    assert!(
        message.contains(&format!("--plugin-sha256 expects {default_sha}")),
        "{message}"
    );
    // The right pin (in any case) passes.
    let pinned = host
        .load(&PluginSource::Embedded, Some(&default_sha.to_uppercase()))
        .await
        .unwrap();
    assert_eq!(pinned.identity().sha256, default_sha);
}

#[tokio::test]
async fn the_compile_cache_hits_and_survives_damaged_entries() {
    let dir = tempfile::tempdir().unwrap();
    let cache = CompileCache::new(dir.path().join("cache"));
    let host = PluginHost::new(PluginLimits::default(), Some(cache.clone())).unwrap();

    let first = host.load(&PluginSource::Embedded, None).await.unwrap();
    assert_eq!(first.cache_outcome(), CacheOutcome::Miss);
    let entry = cache.entry_path(host.engine(), &first.identity().sha256);
    assert!(entry.is_file(), "the compiled component was stored");

    let second = host.load(&PluginSource::Embedded, None).await.unwrap();
    assert_eq!(second.cache_outcome(), CacheOutcome::Hit);
    let (rows, _) = support::transform(&second, &[], &[r#"{"items":[{"product_id":1}]}"#])
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "a component from the cache runs");

    // A damaged entry is a miss, recompiled and rewritten, never a failure.
    for damage in [&b"garbage"[..], &b"\x7fELF"[..], &[][..]] {
        std::fs::write(&entry, damage).unwrap();
        let again = host.load(&PluginSource::Embedded, None).await.unwrap();
        assert_eq!(again.cache_outcome(), CacheOutcome::Miss);
        assert_eq!(
            host.load(&PluginSource::Embedded, None)
                .await
                .unwrap()
                .cache_outcome(),
            CacheOutcome::Hit
        );
    }

    // An unwritable cache directory only costs the cache.
    let blocked = dir.path().join("file-not-dir");
    std::fs::write(&blocked, b"").unwrap();
    let host = PluginHost::new(
        PluginLimits::default(),
        Some(CompileCache::new(blocked.join("x"))),
    )
    .unwrap();
    assert_eq!(
        host.load(&PluginSource::Embedded, None)
            .await
            .unwrap()
            .cache_outcome(),
        CacheOutcome::Miss
    );
}

#[tokio::test]
async fn a_plugin_whose_imports_do_not_type_check_is_refused() {
    let message =
        refusal(support::load(PluginSource::Path(support::test_plugin("mistyped"))).await);
    assert!(
        message.contains(
            "refused: its imports do not match the contract: component imports instance \
             `bitcram:transform/log@0.1.0`"
        ) && message.contains("wrong type"),
        "{message}"
    );
}

#[tokio::test]
async fn a_plugin_whose_info_fails_is_refused() {
    let message = refusal(support::load(PluginSource::Path(support::test_plugin("badinfo"))).await);
    assert!(
        message.contains("refused: its `info` failed: it crashed: wasm trap: wasm `unreachable`")
            && message.contains("; its last output: thread '<unnamed>' ")
            && message.contains(" | info() of test-badinfo fails on purpose | "),
        "{message}"
    );
}

#[tokio::test]
async fn an_unreadable_cache_entry_is_a_miss() {
    let dir = tempfile::tempdir().unwrap();
    let cache = CompileCache::new(dir.path().join("cache"));
    let host = PluginHost::new(PluginLimits::default(), Some(cache.clone())).unwrap();
    let sha256 = support::default_plugin_sha256();
    // A directory where the entry should be: it cannot be read (nor
    // replaced), and the plugin still loads, compiled afresh.
    std::fs::create_dir_all(cache.entry_path(host.engine(), &sha256)).unwrap();
    for _ in 0..2 {
        let plugin = host.load(&PluginSource::Embedded, None).await.unwrap();
        assert_eq!(plugin.cache_outcome(), CacheOutcome::Miss);
    }
}

/// Runs `plugin check PATH` through the binary, failing the test if it does
/// not answer within 30 s (a read that blocks would hang here).
fn check_within_seconds(path: &std::path::Path) -> (Option<i32>, String, std::time::Duration) {
    let started = std::time::Instant::now();
    let mut child = support::bin()
        .args(["plugin", "check"])
        .arg(path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
            return (status.code(), stderr, started.elapsed());
        }
        if started.elapsed() > std::time::Duration::from_secs(30) {
            let _ = child.kill();
            panic!("plugin check {} still running after 30 s", path.display());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn mkfifo(path: &std::path::Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn a_plugin_path_that_is_not_a_regular_file_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let zero = dir.path().join("zero.wasm");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    let fifo = dir.path().join("fifo.wasm");
    mkfifo(&fifo);
    let folder = dir.path().join("folder.wasm");
    std::fs::create_dir(&folder).unwrap();
    // Sparse: larger than the limit without taking the disk.
    let huge = dir.path().join("huge.wasm");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(bitcram_sync::plugin::PLUGIN_FILE_MAX_BYTES + 1)
        .unwrap();
    for (path, says) in [
        (&zero, "refused: it is a device, not a regular file"),
        (&fifo, "refused: it is a FIFO, not a regular file"),
        (&folder, "refused: it is a directory, not a regular file"),
        (
            &huge,
            "refused: it is 256 MiB or more, larger than the limit of 256 MiB",
        ),
    ] {
        let (code, stderr, took) = check_within_seconds(path);
        assert_eq!(code, Some(3), "{}: {stderr}", path.display());
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("error: "))
            .collect();
        assert_eq!(errors.len(), 1, "{stderr}");
        assert!(errors[0].contains(says), "{}: {stderr}", path.display());
        assert!(
            took < std::time::Duration::from_secs(10),
            "{} took {took:?}",
            path.display()
        );
    }
}

#[tokio::test]
async fn cache_entries_that_are_not_plain_files_of_the_job_are_not_used() {
    use std::os::unix::fs::PermissionsExt as _;

    let dir = tempfile::tempdir().unwrap();
    let cache = CompileCache::new(dir.path().join("cache"));
    let host = PluginHost::new(PluginLimits::default(), Some(cache.clone())).unwrap();
    assert_eq!(
        host.load(&PluginSource::Embedded, None)
            .await
            .unwrap()
            .cache_outcome(),
        CacheOutcome::Miss
    );
    let cache_dir = dir.path().join("cache");
    let mode = std::fs::metadata(&cache_dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode, 0o700,
        "the job creates its cache directory for itself only"
    );
    let entry = cache.entry_path(host.engine(), &support::default_plugin_sha256());
    let good = dir.path().join("good.cwasm");
    std::fs::copy(&entry, &good).unwrap();
    let hit = || async {
        host.load(&PluginSource::Embedded, None)
            .await
            .unwrap()
            .cache_outcome()
    };
    assert_eq!(hit().await, CacheOutcome::Hit);

    // Each of these is a miss, compiled afresh (and none hangs or reads
    // without end); a miss stores a good entry again.
    let restore = || {
        let _ = std::fs::remove_file(&entry);
        std::fs::copy(&good, &entry).unwrap();
        std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o600)).unwrap();
    };
    std::fs::remove_file(&entry).unwrap();
    mkfifo(&entry);
    assert_eq!(hit().await, CacheOutcome::Miss, "a FIFO");
    std::fs::remove_file(&entry).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &entry).unwrap();
    assert_eq!(hit().await, CacheOutcome::Miss, "a link to /dev/zero");
    std::fs::remove_file(&entry).unwrap();
    std::os::unix::fs::symlink(&good, &entry).unwrap();
    assert_eq!(
        hit().await,
        CacheOutcome::Miss,
        "a link to a good entry elsewhere"
    );
    restore();
    std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o666)).unwrap();
    assert_eq!(hit().await, CacheOutcome::Miss, "an entry others may write");
    restore();
    std::os::unix::fs::chown(&entry, Some(65534), None).unwrap();
    assert_eq!(hit().await, CacheOutcome::Miss, "an entry of another user");
    restore();
    assert_eq!(hit().await, CacheOutcome::Hit, "restored");

    // A directory others may write: not read, and not written.
    std::fs::set_permissions(&cache_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    assert_eq!(
        hit().await,
        CacheOutcome::Miss,
        "a directory others may write"
    );
    std::fs::remove_file(&entry).unwrap();
    assert_eq!(hit().await, CacheOutcome::Miss);
    assert!(
        !entry.exists(),
        "nothing is stored in a directory others may write"
    );
}

#[test]
fn a_cache_others_may_write_is_named_in_a_warning() {
    use std::os::unix::fs::PermissionsExt as _;

    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("shared-cache");
    std::fs::create_dir(&cache).unwrap();
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = support::bin()
        .args(["plugin", "check"])
        .env("PLUGIN_CACHE_DIR", &cache)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .contains("the plugin cache directory is writable by other users: not used; compiling")
            && stderr.contains(&cache.display().to_string()),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_dir(&cache).unwrap().count(),
        0,
        "nothing stored"
    );
}
