//! `bitcram-sync snapshot` against a fake Bitcram over real sockets: the
//! bodies stored as received, each written as it arrives, and a snapshot
//! that cannot be completed (a body cut off, a body that is not a complete
//! list) leaving none behind, and the one already there as it was.

use std::path::Path;
use std::process::Command;

use crate::support::fake_bitcram::{CHECKOUTS, FakeServer, PRICE_LIST, Reply, STOCK};
use crate::support::{self};
use crate::sync_live::{
    CHECKOUT_BODY, PRICE_LIST_BODY, STOCK_BODY, TOKEN, bitcram, bitcram_answering_price_list, run,
};

/// `bitcram-sync snapshot --out DIR` against `server`.
fn snapshot(server: &FakeServer, out: &Path) -> Command {
    let mut cmd = support::bin();
    cmd.args(["snapshot", "--out"])
        .arg(out)
        .env("URL_BITCRAM", server.url())
        .env("CHECKOUT", "3")
        .env("BITCRAM_TOKEN", TOKEN);
    cmd
}

/// Each file of `dir` (not below it), by name, with its bytes.
fn listing(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|entry| {
                    let path = entry.unwrap().path();
                    let name = path.file_name().unwrap().to_string_lossy().into_owned();
                    (name, std::fs::read(&path).unwrap())
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// The one `error: ` line of a failed command.
fn error_line(stderr: &[u8]) -> String {
    let stderr = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    lines[0].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_stores_the_bodies_as_received_and_replays_offline() {
    let server = bitcram().await;
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("snap");
    let out = run(snapshot(&server, &snap)).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The four files and nothing else: no `.part` file is left behind.
    let names: Vec<String> = listing(&snap).into_iter().map(|(name, _)| name).collect();
    assert_eq!(
        names,
        [
            "checkout.0.json",
            "manifest.json",
            "price-list.0.json",
            "stock.0.json"
        ]
    );
    assert_eq!(
        std::fs::read(snap.join("checkout.0.json")).unwrap(),
        CHECKOUT_BODY.as_bytes()
    );
    assert_eq!(
        std::fs::read(snap.join("stock.0.json")).unwrap(),
        STOCK_BODY.as_bytes()
    );
    assert_eq!(
        std::fs::read(snap.join("price-list.0.json")).unwrap(),
        PRICE_LIST_BODY.as_bytes()
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(snap.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["format"], "bitcram-sync-snapshot/1");
    assert_eq!(manifest["checkout_number"], "3");
    assert_eq!(
        (
            manifest["checkout_id"].as_u64(),
            manifest["warehouse_id"].as_u64()
        ),
        (Some(17), Some(5))
    );
    assert_eq!(
        manifest["bitcram_url"]
            .as_str()
            .unwrap()
            .trim_end_matches('/'),
        server.url().trim_end_matches('/')
    );
    let sources: Vec<&str> = manifest["bodies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources, ["checkout", "stock", "price-list"]);
    for file in support::files(&snap) {
        assert!(!String::from_utf8_lossy(&std::fs::read(&file).unwrap()).contains(TOKEN));
    }

    // Offline: the same rows as the live run gives, with no server at all.
    drop(server);
    let rows = dir.path().join("rows.jsonl");
    let out = support::bin()
        .args(["plugin", "run", "--from"])
        .arg(&snap)
        .arg("--out")
        .arg(&rows)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = std::fs::read_to_string(&rows).unwrap();
    let replayed: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(
        replayed,
        [
            serde_json::json!({"id": "214101", "stock": -2, "data": {"price": 12345.0, "product_name": "Café"}}),
            serde_json::json!({"id": "214102", "stock": 0, "data": {"price": null, "product_name": "Té"}}),
        ],
        "the rows a live sync of these bodies loads (see the first test)"
    );
}

/// A price list of 20,000 items, large enough to arrive in many chunks.
fn large_price_list() -> String {
    let items: Vec<String> = (1..=20_000)
        .map(|id| format!(r#"{{"product_id":{id},"price":{id}.5,"product_name":"Producto {id}"}}"#))
        .collect();
    format!(r#"{{"items":[{}]}}"#, items.join(","))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_cut_off_midway_writes_no_snapshot_and_keeps_the_one_there() {
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("snap");
    let first = run(snapshot(&bitcram().await, &snap)).await;
    assert!(first.status.success());
    let before = listing(&snap);
    assert_eq!(before.len(), 4);

    // The price list starts arriving, with its Content-Length, and the
    // connection drops three quarters of the way through.
    let body = large_price_list();
    let cut = body.len() * 3 / 4;
    let server = bitcram_answering_price_list([
        Reply::ok(body.clone()).identity().cut_after(cut),
        Reply::ok(body),
    ])
    .await;
    let out = run(snapshot(&server, &snap)).await;
    assert_eq!(out.status.code(), Some(1));
    let error = error_line(&out.stderr);
    assert!(
        error.contains("Bitcram price_list (/api/checkouts/index/17/price_list): ")
            && error.contains("the response body was cut short")
            && error.ends_with("is not fetched again, and no snapshot is written"),
        "{error}"
    );
    assert_eq!(server.requests_to(PRICE_LIST).len(), 1);
    assert!(
        listing(&snap) == before,
        "the previous snapshot changed, or a .part file was left behind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_that_fails_its_check_writes_no_snapshot() {
    for (price_list, words) in [
        (
            r#"{"items":[{"product_id":1},{"product_id":2}],"count":5}"#.to_owned(),
            "the response reports count 5 but carries 2 items; a partial list is refused",
        ),
        // Cut short by the server itself: the JSON ends early, the length agrees.
        (
            large_price_list()[..50_000].to_owned(),
            "the body is cut short (EOF while parsing",
        ),
    ] {
        let server = FakeServer::start().await;
        server.script(CHECKOUTS, [Reply::ok(CHECKOUT_BODY)]);
        server.script(PRICE_LIST, [Reply::ok(price_list)]);
        server.script(STOCK, [Reply::ok(STOCK_BODY)]);
        let dir = tempfile::tempdir().unwrap();
        let snap = dir.path().join("snap");
        let out = run(snapshot(&server, &snap)).await;
        assert_eq!(out.status.code(), Some(1));
        let error = error_line(&out.stderr);
        assert!(
            error.contains("Bitcram price_list (/api/checkouts/index/17/price_list): ")
                && error.contains(words),
            "{error}"
        );
        assert_eq!(listing(&snap), [], "nothing is left in {}", snap.display());
    }
}
