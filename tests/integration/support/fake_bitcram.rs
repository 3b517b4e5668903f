//! A scriptable HTTP/1.1 server on 127.0.0.1 standing in for Bitcram and for
//! Secret Manager: replies are queued per path, requests are recorded.
//!
//! Hand-written rather than built on a server crate so that a test can send
//! what a real server would not: a body shorter than its Content-Length, a
//! reply that comes too late, a gzip stream cut short.
//!
//! Like the web servers in front of JSON APIs, it compresses a reply with
//! gzip when the request asks for it (`Accept-Encoding: gzip`), unless the
//! reply says [`Reply::identity`].

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// The checkouts endpoint.
pub const CHECKOUTS: &str = "/api/checkouts/index";
/// The price list of checkout 17, the checkout the tests' bodies describe.
pub const PRICE_LIST: &str = "/api/checkouts/index/17/price_list";
/// The stock endpoint.
pub const STOCK: &str = "/api/stock_items/index";

/// One scripted reply.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Send only this many bytes of the body (Content-Length still announces
    /// all of it), then close the connection.
    pub cut_after: Option<usize>,
    /// Wait this long before answering.
    pub delay: Duration,
    /// Never compress, whatever the request accepts.
    pub identity: bool,
    /// Compress (whatever the request accepts) and send only this many
    /// bytes of the gzip stream, announced as the whole body: a response
    /// complete as HTTP whose gzip stream is cut short.
    pub gzip_cut_to: Option<usize>,
}

impl Reply {
    /// A reply with a JSON body.
    pub fn json(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.into(),
            cut_after: None,
            delay: Duration::ZERO,
            identity: false,
            gzip_cut_to: None,
        }
    }

    /// A 200 with a JSON body.
    pub fn ok(body: impl Into<Vec<u8>>) -> Self {
        Self::json(200, body)
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Announces the whole body but sends only its first `bytes`.
    pub fn cut_after(mut self, bytes: usize) -> Self {
        self.cut_after = Some(bytes);
        self
    }

    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Sent as it is, even to a client that accepts gzip.
    pub fn identity(mut self) -> Self {
        self.identity = true;
        self
    }

    /// Sent gzip-compressed, with only the first `bytes` of the gzip stream
    /// (and a Content-Length that matches them).
    pub fn gzip_cut_to(mut self, bytes: usize) -> Self {
        self.gzip_cut_to = Some(bytes);
        self
    }
}

/// A request the server received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    pub path: String,
    pub authorization: Option<String>,
    /// The `Accept-Encoding` header, as sent.
    pub accept_encoding: Option<String>,
    pub at: Instant,
}

impl Recorded {
    /// A query parameter, decoded.
    pub fn query(&self, name: &str) -> Option<String> {
        let url = reqwest::Url::parse(&format!("http://fake{}", self.target)).unwrap();
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

#[derive(Default)]
struct State {
    /// Replies per path; the last one repeats.
    scripts: HashMap<String, VecDeque<Reply>>,
    requests: Vec<Recorded>,
}

/// The server; stops when dropped.
pub struct FakeServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeServer {
    /// Listens on 127.0.0.1 on a free port.
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1").await
    }

    /// Listens on `ip` (another loopback address, e.g. `127.0.0.2`, is
    /// another host as far as a client is concerned).
    pub async fn start_on(ip: &str) -> Self {
        let listener = TcpListener::bind((ip, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, shared.clone()));
            }
        });
        Self { addr, state, task }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Queues replies for `path` (without query); the last one repeats.
    pub fn script(&self, path: &str, replies: impl IntoIterator<Item = Reply>) {
        let replies: VecDeque<Reply> = replies.into_iter().collect();
        assert!(!replies.is_empty(), "script at least one reply for {path}");
        self.state
            .lock()
            .unwrap()
            .scripts
            .insert(path.to_owned(), replies);
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    /// The requests to `path`.
    pub fn requests_to(&self, path: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    /// Asserts that one extraction of checkout `checkout_number` (warehouse
    /// `warehouse_id`) made exactly the three documented calls, each a GET
    /// carrying `Bearer <token>`: the checkout found by its number, the
    /// stock filtered by warehouse in its light form, the price list.
    #[track_caller]
    pub fn assert_documented_calls(&self, token: &str, checkout_number: &str, warehouse_id: u64) {
        let requests = self.requests();
        assert_eq!(requests.len(), 3, "{requests:?}");
        for request in &requests {
            assert_eq!(request.method, "GET");
            assert_eq!(
                request.authorization.as_deref(),
                Some(format!("Bearer {token}").as_str())
            );
        }
        let checkout = &self.requests_to(CHECKOUTS)[0];
        assert_eq!(
            checkout.query("where"),
            Some(format!(
                r#"{{"checkouts.checkout_number":"{checkout_number}"}}"#
            ))
        );
        let stock = &self.requests_to(STOCK)[0];
        assert_eq!(stock.query("list_light").as_deref(), Some("true"));
        assert_eq!(
            stock.query("where"),
            Some(format!(r#"{{"warehouse_id":{warehouse_id}}}"#))
        );
        assert_eq!(self.requests_to(PRICE_LIST).len(), 1);
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Answers one connection: one request, one reply, then close.
async fn serve(mut stream: TcpStream, state: Arc<Mutex<State>>) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let method = request_line.next().unwrap_or_default().to_owned();
    let target = request_line.next().unwrap_or_default().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let authorization = header("authorization");
    let accept_encoding = header("accept-encoding");
    let path = target.split('?').next().unwrap_or_default().to_owned();
    let reply = {
        let mut state = state.lock().unwrap();
        state.requests.push(Recorded {
            method,
            target,
            path: path.clone(),
            authorization,
            accept_encoding: accept_encoding.clone(),
            at: Instant::now(),
        });
        match state.scripts.get_mut(&path) {
            Some(queue) if queue.len() > 1 => queue.pop_front().unwrap(),
            Some(queue) => queue[0].clone(),
            None => Reply::json(404, format!(r#"{{"error":"nothing scripted for {path}"}}"#)),
        }
    };
    tokio::time::sleep(reply.delay).await;
    let asks_gzip = accept_encoding.is_some_and(|a| a.split(',').any(|e| e.trim() == "gzip"));
    let mut body = reply.body.clone();
    let mut out = format!("HTTP/1.1 {} {}\r\n", reply.status, reason(reply.status));
    for (name, value) in &reply.headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    if reply.gzip_cut_to.is_some() || (asks_gzip && !reply.identity && !body.is_empty()) {
        body = gzip(&body);
        if let Some(bytes) = reply.gzip_cut_to {
            body.truncate(bytes);
        }
        out.push_str("Content-Encoding: gzip\r\n");
    }
    out.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    let sent = reply.cut_after.unwrap_or(body.len());
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&body[..sent]);
    let _ = stream.write_all(&bytes).await;
    let _ = stream.shutdown().await;
}

/// `bytes` as a gzip stream.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        302 => "Found",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Whatever",
    }
}

/// The path Secret Manager's REST API reads a version's payload at.
pub fn secret_access_path(project: &str, secret: &str, version: &str) -> String {
    format!("/v1/projects/{project}/secrets/{secret}/versions/{version}:access")
}

/// Secret Manager's answer to an access: `data` in base64 and, if given, its
/// `dataCrc32c` (in decimal, as Google sends int64s).
pub fn secret_reply(name: &str, data: &[u8], crc32c: Option<u32>) -> Reply {
    use base64::Engine as _;
    let mut payload = serde_json::json!({
        "data": base64::engine::general_purpose::STANDARD.encode(data),
    });
    if let Some(crc) = crc32c {
        payload["dataCrc32c"] = crc.to_string().into();
    }
    Reply::ok(serde_json::json!({ "name": name, "payload": payload }).to_string())
}

/// Google's error shape.
pub fn google_error(code: u16, status: &str, message: &str) -> Reply {
    Reply::json(
        code,
        serde_json::json!({ "error": { "code": code, "message": message, "status": status } })
            .to_string(),
    )
}
