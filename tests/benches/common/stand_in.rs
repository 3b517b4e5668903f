//! The stand-in Bitcram of the benchmarks: a minimal HTTP/1.1 server, in a
//! process of its own (the benchmark executable re-run with [`SERVE_ARG`]),
//! serving generated bodies with their `Content-Length`, compressed when
//! asked and the server is told to, at full loopback speed or paced to a
//! link's rate.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use super::Bodies;

/// The first argument that makes a benchmark executable the stand-in (see
/// [`serve_if_asked`]).
pub const SERVE_ARG: &str = "__serve";

pub const PRICE_LIST_PATH: &str = "/api/checkouts/index/17/price_list";
pub const STOCK_PATH: &str = "/api/stock_items/index";
pub const CHECKOUT_PATH: &str = "/api/checkouts/index";

/// If this process was started as the stand-in ([`SERVE_ARG`] DIR
/// OPTIONS...), serves until its stdin closes and exits; otherwise returns.
pub fn serve_if_asked() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).is_none_or(|a| a != SERVE_ARG) {
        return;
    }
    let Some(dir) = args.get(2) else {
        eprintln!("stand-in: no body directory");
        std::process::exit(2);
    };
    match serve(Path::new(dir), &args[3..]) {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("stand-in: {e:#}");
            std::process::exit(1);
        }
    }
}

/// Writes `bodies` into `dir` as the stand-in serves them: each plain, and
/// gzipped beside it (`NAME.gz`).
pub fn write_bodies(dir: &Path, bodies: &Bodies) -> anyhow::Result<()> {
    for (name, body) in [
        ("checkout.json", &bodies.checkout),
        ("price-list.json", &bodies.price_list),
        ("stock.json", &bodies.stock),
    ] {
        std::fs::write(dir.join(name), body)?;
        std::fs::write(dir.join(format!("{name}.gz")), gzip(body))?;
    }
    Ok(())
}

/// A stand-in process (see [`serve`]); stops when its stdin closes, i.e.
/// when this process ends, whichever way it ends.
pub struct Server {
    child: std::process::Child,
    pub port: u16,
}

impl Server {
    /// Serves the bodies in `dir` (see [`write_bodies`]) with `options`
    /// (see [`serve`]).
    pub fn start(dir: &Path, options: &[&str]) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("locating the benchmark executable")?;
        let mut child = Command::new(exe)
            .arg(SERVE_ARG)
            .arg(dir)
            .args(options)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting the HTTP server")?;
        let mut first_line = String::new();
        BufReader::new(child.stdout.take().context("the server's stdout")?)
            .read_line(&mut first_line)
            .context("reading the server's port")?;
        let port: u16 = first_line
            .trim()
            .parse()
            .with_context(|| format!("the server announced {first_line:?} instead of a port"))?;
        Ok(Self { child, port })
    }

    pub fn stop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// `bytes` compressed as a server would send them.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder
        .write_all(bytes)
        .expect("writing to a Vec cannot fail");
    encoder.finish().expect("writing to a Vec cannot fail")
}

/// The server process: a minimal HTTP/1.1 server with keep-alive, serving
/// the bodies in `dir` with their Content-Length. Options: `gzip` serves
/// the `.gz` files beside them, with `Content-Encoding: gzip`, to a request
/// that accepts gzip; `pace=MBIT` sends at most that many megabits a second,
/// all connections together. Prints its port, then serves until its stdin
/// closes.
pub fn serve(dir: &Path, options: &[String]) -> anyhow::Result<()> {
    let gzip = options.iter().any(|o| o == "gzip");
    let pace: Option<u64> = options
        .iter()
        .find_map(|o| o.strip_prefix("pace="))
        .map(str::parse)
        .transpose()
        .context("pace=MBIT")?;
    let read = |name: &str| -> anyhow::Result<Body> {
        let path = dir.join(name);
        let plain =
            Arc::new(std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?);
        let gzipped = if gzip {
            let path = dir.join(format!("{name}.gz"));
            Some(Arc::new(
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?,
            ))
        } else {
            None
        };
        Ok(Body { plain, gzipped })
    };
    let routes = Arc::new(Routes {
        checkout: read("checkout.json")?,
        price_list: read("price-list.json")?,
        stock: read("stock.json")?,
        pacer: pace.map(|mbit| Pacer {
            bytes_per_second: mbit * 1_000_000 / 8,
            next: std::sync::Mutex::new(Instant::now()),
        }),
    });
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        std::process::exit(0);
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the server's runtime")?;
    runtime.block_on(async move {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        println!("{}", listener.local_addr()?.port());
        loop {
            let (stream, _) = listener.accept().await?;
            tokio::spawn(answer(stream, Arc::clone(&routes)));
        }
    })
}

struct Body {
    plain: Arc<Vec<u8>>,
    gzipped: Option<Arc<Vec<u8>>>,
}

struct Routes {
    checkout: Body,
    price_list: Body,
    stock: Body,
    pacer: Option<Pacer>,
}

/// One link's rate, shared by every connection: each slice sent books the
/// link for its time after the previous booking.
struct Pacer {
    bytes_per_second: u64,
    next: std::sync::Mutex<Instant>,
}

impl Pacer {
    /// When a slice of `bytes` may be sent.
    fn book(&self, bytes: usize) -> Instant {
        let mut next = self.next.lock().unwrap();
        let start = (*next).max(Instant::now());
        *next = start + Duration::from_secs_f64(bytes as f64 / self.bytes_per_second as f64);
        *next
    }
}

/// Answers the GETs of one connection until the client closes it.
async fn answer(mut stream: TcpStream, routes: Arc<Routes>) {
    let _ = stream.set_nodelay(true);
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let head_end = loop {
            if let Some(at) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => pending.extend_from_slice(&buf[..n]),
            }
        };
        let head = String::from_utf8_lossy(&pending[..head_end]).into_owned();
        pending.drain(..head_end);
        let target = head.split(' ').nth(1).unwrap_or_default();
        let path = target.split('?').next().unwrap_or_default();
        let accepts_gzip = head.lines().any(|line| {
            line.split_once(':').is_some_and(|(name, value)| {
                name.eq_ignore_ascii_case("accept-encoding")
                    && value.split(',').any(|e| e.trim() == "gzip")
            })
        });
        let (status, body) = match path {
            CHECKOUT_PATH => ("200 OK", Some(&routes.checkout)),
            PRICE_LIST_PATH => ("200 OK", Some(&routes.price_list)),
            STOCK_PATH => ("200 OK", Some(&routes.stock)),
            _ => ("404 Not Found", None),
        };
        let (body, encoding): (&[u8], &str) = match body {
            None => (b"{}", ""),
            Some(Body {
                gzipped: Some(gzipped),
                ..
            }) if accepts_gzip => (gzipped.as_slice(), "Content-Encoding: gzip\r\n"),
            Some(body) => (body.plain.as_slice(), ""),
        };
        let reply_head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{encoding}Content-Length: {}\r\n\r\n",
            body.len()
        );
        if stream.write_all(reply_head.as_bytes()).await.is_err() {
            return;
        }
        let sent = match &routes.pacer {
            None => stream.write_all(body).await,
            Some(pacer) => {
                let mut sent = Ok(());
                for slice in body.chunks(64 << 10) {
                    tokio::time::sleep_until(pacer.book(slice.len()).into()).await;
                    sent = stream.write_all(slice).await;
                    if sent.is_err() {
                        break;
                    }
                }
                sent
            }
        };
        if sent.is_err() {
            return;
        }
    }
}
