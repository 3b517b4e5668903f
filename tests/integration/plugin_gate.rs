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
        ("bitcram-transform", "0.1.0")
    );
    assert_eq!(id.package_version, "0.1.0");
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
        message.contains("built against bitcram:transform@0.2.0")
            && message.contains("supports bitcram:transform@0.1.0"),
        "{message}"
    );
}

#[tokio::test]
async fn a_plugin_importing_a_capability_outside_the_contract_is_refused() {
    let message = refusal(support::load(PluginSource::Path(support::test_plugin("sneaky"))).await);
    assert!(
        message.contains("imports wasi:filesystem/") && message.contains("outside the contract"),
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
        message.contains("refused: its `info` failed: it crashed: wasm trap: wasm `unreachable`"),
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
