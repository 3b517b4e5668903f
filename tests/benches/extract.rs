//! Benchmark (issue 3): the Bitcram client fetching a 100,000-product price
//! list and its stock from a local HTTP server, against `curl` downloading
//! the same bytes (target: at most 1.5 times curl keeping the bytes, in
//! files on tmpfs; curl to /dev/null is printed too); and the client's peak
//! memory against the bodies' size.
//!
//! The client is measured two ways, both through `BitcramClient::open`
//! (the lists arrive in chunks): as a sync's extraction costs it, every
//! chunk taken as it arrives and each body's digest awaited (a sync hands
//! the chunks to the transform, which checks the envelopes as it splits
//! out the items), and as `snapshot` uses it, each list's envelope checked
//! on the way (its bodies then go to disk; here they are dropped).
//!
//! Then the compressed transfer: the same downloads from servers that
//! compress when asked (`Accept-Encoding: gzip`) and from servers that do
//! not, at full loopback speed and over a link paced to 100 Mbit/s, next to
//! curl with and without `--compressed`.
//!
//! Run with `cargo bench -p bitcram-sync --bench extract`. Prints figures
//! and whether each target is met; never fails on a missed target.
//!
//! Every party is its own process, so that none pollutes another's memory:
//! this executable re-runs itself as the server ([`stand_in::SERVE_ARG`]), as the
//! client ([`CLIENT_ARG`]), as a baseline that only starts the runtime
//! ([`BASELINE_ARG`]), and as the launcher that measures a child's wall time
//! and peak RSS (see `common::measure`).

mod common;

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bitcram_sync::bitcram::{BitcramClient, BitcramConfig, ListStream, check_reader};
use bitcram_sync::secrets::Token;

use common::stand_in::{self, PRICE_LIST_PATH, STOCK_PATH, Server};
use common::{Bodies, Measured, mb, median, ms, verdict};

const CLIENT_ARG: &str = "__client";
const BASELINE_ARG: &str = "__baseline";
/// The client's modes: a sync's extraction, `snapshot`'s (checked), and an
/// unmeasured run that times the parts and prints them.
const DOWNLOAD_ARG: &str = "download";
const FETCH_ARG: &str = "fetch";
const DIAGNOSE_ARG: &str = "diagnose";

/// Measured runs of each program; the median is reported.
const RUNS: usize = 5;

/// Runs of each program in the compressed-transfer section (a paced run
/// takes seconds).
const PACED_RUNS: usize = 3;
/// The paced link's rate, in Mbit/s.
const PACE_MBIT: u64 = 100;

const TARGET_TIME_RATIO: f64 = 1.5;
const TARGET_RSS_RATIO: f64 = 3.0;

fn main() -> anyhow::Result<()> {
    common::run_launcher_if_asked();
    stand_in::serve_if_asked();
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some(CLIENT_ARG) => client(
            args.get(2).context("no URL")?,
            args.get(3).context("no client mode")?,
        ),
        Some(BASELINE_ARG) => baseline(),
        _ => bench(),
    }
}

fn bench() -> anyhow::Result<()> {
    let dir = tempfile::tempdir().context("creating a directory for the bodies")?;
    let (price_list_bytes, stock_bytes) = {
        let bodies = Bodies::generate(0);
        stand_in::write_bodies(dir.path(), &bodies)?;
        (bodies.price_list.len() as u64, bodies.stock.len() as u64)
    };
    let bodies_bytes = price_list_bytes + stock_bytes;

    let exe = std::env::current_exe().context("locating the benchmark executable")?;
    let mut server = Server::start(dir.path(), &[])?;
    let port = server.port;
    let base = format!("http://127.0.0.1:{port}");
    let price_list_url = format!("{base}{PRICE_LIST_PATH}");
    let stock_url = format!(
        "{base}{STOCK_PATH}?list_light=true&where=%7B%22warehouse_id%22%3A{}%7D",
        common::WAREHOUSE_ID
    );

    let quiet = |cmd: &mut Command| {
        cmd.env("RUST_LOG", "warn");
    };
    let download_args = [
        OsStr::new(CLIENT_ARG),
        OsStr::new(&base),
        OsStr::new(DOWNLOAD_ARG),
    ];
    let fetch_args = [
        OsStr::new(CLIENT_ARG),
        OsStr::new(&base),
        OsStr::new(FETCH_ARG),
    ];
    let curl_sequential: Vec<&OsStr> = [
        "--no-progress-meter",
        "-S",
        "--fail",
        "-o",
        "/dev/null",
        "-o",
        "/dev/null",
        &price_list_url,
        &stock_url,
    ]
    .map(OsStr::new)
    .to_vec();
    let mut curl_parallel = curl_sequential.clone();
    curl_parallel.insert(0, OsStr::new("--parallel"));
    // The target's baseline (as decided when the first target, 1.5 x curl
    // to /dev/null, proved out of reach for a client that kept the bytes):
    // curl keeping the bytes, in files on tmpfs.
    let kept = tempfile::Builder::new()
        .prefix("bitcram-bench-")
        .tempdir_in("/dev/shm")
        .context("creating a directory on /dev/shm")?;
    let kept_price_list = kept.path().join("price-list.json");
    let kept_stock = kept.path().join("stock.json");
    let curl_keep: Vec<&OsStr> = vec![
        OsStr::new("--parallel"),
        OsStr::new("--no-progress-meter"),
        OsStr::new("-S"),
        OsStr::new("--fail"),
        OsStr::new("-o"),
        kept_price_list.as_os_str(),
        OsStr::new("-o"),
        kept_stock.as_os_str(),
        OsStr::new(&price_list_url),
        OsStr::new(&stock_url),
    ];

    // One untimed round first: page cache, server and loopback warm.
    common::measure(&exe, &fetch_args, quiet)?;
    common::measure("curl", &curl_sequential, |_| {})?;

    let mut baseline = Vec::new();
    let mut client = Vec::new();
    let mut fetch = Vec::new();
    let mut curl_kept = Vec::new();
    let mut sequential = Vec::new();
    let mut parallel = Vec::new();
    for _ in 0..RUNS {
        baseline.push(common::measure(&exe, &[OsStr::new(BASELINE_ARG)], quiet)?);
        client.push(common::measure(&exe, &download_args, quiet)?);
        fetch.push(common::measure(&exe, &fetch_args, quiet)?);
        sequential.push(common::measure("curl", &curl_sequential, |_| {})?);
        parallel.push(common::measure("curl", &curl_parallel, |_| {})?);
        // A fresh file each time, so that tmpfs allocates its pages anew.
        let _ = std::fs::remove_file(&kept_price_list);
        let _ = std::fs::remove_file(&kept_stock);
        curl_kept.push(common::measure("curl", &curl_keep, |_| {})?);
    }
    let diagnosis = Command::new(&exe)
        .args([CLIENT_ARG, &base, DIAGNOSE_ARG])
        .env("RUST_LOG", "warn")
        .stderr(Stdio::inherit())
        .output()
        .context("running the client's diagnosis")?;
    server.stop();
    let parts: Vec<Duration> = String::from_utf8_lossy(&diagnosis.stdout)
        .split_whitespace()
        .filter_map(|n| n.parse().ok().map(Duration::from_nanos))
        .collect();
    let [
        client_new,
        download_inside,
        fetch_inside,
        discard,
        keep,
        envelope_check,
    ] = parts[..]
    else {
        bail!("the client's diagnosis failed: {}", diagnosis.status);
    };

    let (baseline_wall, baseline_rss) = medians(&baseline);
    let (client_wall, client_rss) = medians(&client);
    let (fetch_wall, fetch_rss) = medians(&fetch);
    let (sequential_wall, sequential_rss) = medians(&sequential);
    let (parallel_wall, parallel_rss) = medians(&parallel);
    let curl_wall = sequential_wall.min(parallel_wall);
    let (kept_wall, _) = medians(&curl_kept);
    let time_ratio = client_wall.as_secs_f64() / curl_wall.as_secs_f64();
    let fetch_ratio = fetch_wall.as_secs_f64() / curl_wall.as_secs_f64();
    let rss_ratio = client_rss.max(fetch_rss) as f64 / bodies_bytes as f64;

    println!(
        "extract: median of {RUNS} runs; each a separate process, wall time from spawn to exit, \
         peak RSS from wait4 (MB = 10^6 bytes)"
    );
    println!(
        "bodies: price list {} + stock {} = {}",
        mb(price_list_bytes),
        mb(stock_bytes),
        mb(bodies_bytes)
    );
    println!(
        "client as a sync uses it (chunks taken):{:>9}  peak RSS {}",
        ms(client_wall),
        mb(client_rss)
    );
    println!(
        "client with every check (as snapshot):  {:>9}  peak RSS {}",
        ms(fetch_wall),
        mb(fetch_rss)
    );
    println!(
        "baseline (runtime start only):          {:>9}  peak RSS {}",
        ms(baseline_wall),
        mb(baseline_rss)
    );
    println!(
        "curl, two downloads in turn:            {:>9}  peak RSS {}",
        ms(sequential_wall),
        mb(sequential_rss)
    );
    println!(
        "curl --parallel, two downloads:         {:>9}  peak RSS {}",
        ms(parallel_wall),
        mb(parallel_rss)
    );
    println!("ratio client/curl (faster curl):        {time_ratio:.2}");
    println!(
        "ratio client/curl in turn, /parallel:   {:.2}, {:.2}",
        client_wall.as_secs_f64() / sequential_wall.as_secs_f64(),
        client_wall.as_secs_f64() / parallel_wall.as_secs_f64()
    );
    println!(
        "ratio fetch (every check)/curl:         {fetch_ratio:.2}  (what `snapshot` waits for)"
    );
    println!(
        "curl --parallel into files on tmpfs:    {:>9}  (keeps the bytes in memory)",
        ms(kept_wall)
    );
    let kept_ratio = client_wall.as_secs_f64() / kept_wall.as_secs_f64();
    println!(
        "ratio client/that curl:                 {kept_ratio:.2}  target <= {TARGET_TIME_RATIO}: {}",
        verdict(kept_ratio <= TARGET_TIME_RATIO)
    );
    println!(
        "client peak RSS / bodies (larger run):  {rss_ratio:.2}  target <= {TARGET_RSS_RATIO}: {}",
        verdict(rss_ratio <= TARGET_RSS_RATIO)
    );
    println!(
        "(client peak RSS - baseline) / bodies:  {:.2}",
        client_rss.max(fetch_rss).saturating_sub(baseline_rss) as f64 / bodies_bytes as f64
    );
    println!("inside one more client process (not measured above):");
    println!(
        "    BitcramClient::new (HTTP client, system trust store): {}",
        ms(client_new)
    );
    println!(
        "    open, every chunk taken:            {:>9}",
        ms(download_inside)
    );
    println!(
        "    open, every envelope checked:       {:>9}",
        ms(fetch_inside)
    );
    println!(
        "    reqwest GET of both, bytes discarded (as curl):     {}",
        ms(discard)
    );
    println!(
        "    reqwest GET of both into presized buffers (4 KiB pages), no check: {}",
        ms(keep)
    );
    println!(
        "    envelope check of the price list (serde_json, after its download): {}",
        ms(envelope_check)
    );
    compressed(&exe, dir.path(), price_list_bytes)
}

/// The same downloads from servers that compress when asked, at full
/// loopback speed and over a link paced to [`PACE_MBIT`] (about what a job
/// fetching from the internet sees), against the same servers not
/// compressing, and curl with and without `--compressed`.
fn compressed(exe: &Path, dir: &Path, price_list_bytes: u64) -> anyhow::Result<()> {
    let gzipped = std::fs::metadata(dir.join("price-list.json.gz"))?.len();
    let pace = format!("pace={PACE_MBIT}");
    let quiet = |cmd: &mut Command| {
        cmd.env("RUST_LOG", "warn");
    };
    let kept = tempfile::Builder::new()
        .prefix("bitcram-bench-")
        .tempdir_in("/dev/shm")
        .context("creating a directory on /dev/shm")?;
    println!(
        "compressed transfer: the price list is {} as gzip (of {}); median of {PACED_RUNS} runs",
        mb(gzipped),
        mb(price_list_bytes)
    );
    for (link, extra) in [
        ("full loopback speed", None),
        (
            "a link paced to 100 Mbit/s, shared by the downloads",
            Some(pace.as_str()),
        ),
    ] {
        println!("  over {link}:");
        for compress in [false, true] {
            let mut args: Vec<&str> = Vec::new();
            if compress {
                args.push("gzip");
            }
            args.extend(extra);
            let mut server = Server::start(dir, &args)?;
            let base = format!("http://127.0.0.1:{}", server.port);
            let price_list_url = format!("{base}{PRICE_LIST_PATH}");
            let stock_url = format!("{base}{STOCK_PATH}?list_light=true");
            let price_list_file = kept.path().join("price-list.json");
            let stock_file = kept.path().join("stock.json");
            let mut curl: Vec<&OsStr> = ["--parallel", "--no-progress-meter", "-S", "--fail"]
                .map(OsStr::new)
                .to_vec();
            if compress {
                curl.push(OsStr::new("--compressed"));
            }
            curl.extend([
                OsStr::new("-o"),
                price_list_file.as_os_str(),
                OsStr::new("-o"),
                stock_file.as_os_str(),
                OsStr::new(&price_list_url),
                OsStr::new(&stock_url),
            ]);
            let client_args = [
                OsStr::new(CLIENT_ARG),
                OsStr::new(&base),
                OsStr::new(DOWNLOAD_ARG),
            ];
            let mut client = Vec::new();
            let mut curled = Vec::new();
            for _ in 0..PACED_RUNS {
                client.push(common::measure(exe, &client_args, quiet)?);
                let _ = std::fs::remove_file(&price_list_file);
                let _ = std::fs::remove_file(&stock_file);
                curled.push(common::measure("curl", &curl, |_| {})?);
            }
            server.stop();
            let (client_wall, client_rss) = medians(&client);
            let (curl_wall, _) = medians(&curled);
            let how = if compress {
                "compressing (gzip)"
            } else {
                "not compressing  "
            };
            let curl_how = if compress {
                "curl --compressed"
            } else {
                "curl             "
            };
            println!(
                "    server {how}: client {:>9} (peak RSS {}), {curl_how} {:>9}, ratio {:.2}",
                ms(client_wall),
                mb(client_rss),
                ms(curl_wall),
                client_wall.as_secs_f64() / curl_wall.as_secs_f64()
            );
        }
    }
    Ok(())
}

/// The median wall time and the median peak RSS.
fn medians(runs: &[Measured]) -> (Duration, u64) {
    let walls: Vec<Duration> = runs.iter().map(|m| m.wall).collect();
    let rss: Vec<u64> = runs.iter().map(|m| m.peak_rss_bytes).collect();
    (median(&walls), median(&rss))
}

/// The client process. `download`: a sync's extraction, every chunk of
/// both lists taken as it arrives and dropped, each digest awaited.
/// `fetch`: what `snapshot` waits for, each list's envelope checked as it
/// arrives. `diagnose`: both in turn, then plain downloads of the same
/// bodies (discarded, then kept) and the envelope check of the price list;
/// prints the six durations (the client's construction first) in
/// nanoseconds.
fn client(base_url: &str, mode: &str) -> anyhow::Result<()> {
    bitcram_sync::net::install_tls_provider();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let url = bitcram_sync::bitcram::parse_base_url(base_url, false)?;
        let started = Instant::now();
        let client = BitcramClient::new(
            BitcramConfig::new(url),
            Token::new("bench-token".to_owned())?,
        )?;
        let client_new = started.elapsed();
        let check_count = |items: usize| {
            if items == common::PRODUCTS {
                Ok(())
            } else {
                Err(anyhow::anyhow!(
                    "fetched {items} price-list items, expected {}",
                    common::PRODUCTS
                ))
            }
        };
        match mode {
            DOWNLOAD_ARG => {
                if take_lists(&client, false).await? == 0 {
                    bail!("the price list came back empty");
                }
                return Ok(());
            }
            FETCH_ARG => return check_count(take_lists(&client, true).await?),
            DIAGNOSE_ARG => {}
            other => bail!("unknown client mode {other:?}"),
        }
        let started = Instant::now();
        take_lists(&client, false).await?;
        let download_inside = started.elapsed();
        let started = Instant::now();
        check_count(take_lists(&client, true).await?)?;
        let fetch = started.elapsed();
        let http = reqwest::Client::builder().no_proxy().build()?;
        // Both bodies concurrently, read chunk by chunk as the client does;
        // `keep` stores them in buffers presized from Content-Length (fresh
        // memory, as in a sync), otherwise the bytes are only counted (what
        // curl does with /dev/null).
        let get = |path: &str, keep: bool| {
            let request = http.get(format!("{base_url}{path}"));
            async move {
                let mut response = request.send().await?.error_for_status()?;
                let capacity = if keep {
                    response.content_length().unwrap_or(0)
                } else {
                    0
                };
                let mut body = Vec::with_capacity(capacity as usize);
                let mut bytes = 0;
                while let Some(chunk) = response.chunk().await? {
                    bytes += chunk.len();
                    if keep {
                        body.extend_from_slice(&chunk);
                    }
                }
                anyhow::Ok((bytes, body))
            }
        };
        let started = Instant::now();
        tokio::try_join!(get(PRICE_LIST_PATH, false), get(STOCK_PATH, false))?;
        let discard = started.elapsed();
        let started = Instant::now();
        let ((_, price_list), (_, stock)) =
            tokio::try_join!(get(PRICE_LIST_PATH, true), get(STOCK_PATH, true))?;
        let keep = started.elapsed();
        let started = Instant::now();
        common::count_items(&price_list)?;
        let parse = started.elapsed();
        common::count_items(&stock)?;
        println!(
            "{} {} {} {} {} {}",
            client_new.as_nanos(),
            download_inside.as_nanos(),
            fetch.as_nanos(),
            discard.as_nanos(),
            keep.as_nanos(),
            parse.as_nanos()
        );
        Ok(())
    })
}

/// Finds the checkout, opens both lists and reads each to its end on a
/// blocking thread, as it arrives: dropping the bytes, or (`check`)
/// checking the envelope. Returns the price list's size, or its items when
/// checked.
async fn take_lists(client: &BitcramClient, check: bool) -> anyhow::Result<usize> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    let opened = client
        .open(common::CHECKOUT_NUMBER, deadline, "the bench stops")
        .await?;
    let take = |list: ListStream| async move {
        let mut reader = list.body.into_reader();
        let read = tokio::task::spawn_blocking(move || {
            if check {
                check_reader(&mut reader).map_err(|e| anyhow::anyhow!("{e:?}"))
            } else {
                std::io::copy(&mut reader, &mut std::io::sink())
                    .map(|n| n as usize)
                    .context("reading a body")
            }
        })
        .await??;
        list.arrival.await?.map_err(anyhow::Error::msg)?;
        anyhow::Ok(read)
    };
    let (price_list, _) = tokio::try_join!(take(opened.price_list), take(opened.stock))?;
    Ok(price_list)
}

/// The baseline process: the runtime the client uses, started and stopped.
fn baseline() -> anyhow::Result<()> {
    bitcram_sync::net::install_tls_provider();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {});
    Ok(())
}
