//! Running a "nosy" test plugin (one per language) that looks for a way out
//! of the sandbox, and what the test then checks.

use std::net::{TcpListener, UdpSocket};
use std::path::Path;

/// What a nosy plugin's run left: the row it made, the JSON log, the exit
/// status.
pub struct NosyRun {
    pub seen: Option<serde_json::Value>,
    pub log: String,
    pub code: Option<i32>,
}

/// A TCP and a UDP socket on one free port of 127.0.0.1, for the plugin to
/// be told about; [`Listening::assert_nothing_arrived`] afterwards.
pub struct Listening {
    tcp: TcpListener,
    udp: UdpSocket,
}

impl Listening {
    pub fn new() -> Self {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        tcp.set_nonblocking(true).unwrap();
        let udp = UdpSocket::bind(tcp.local_addr().unwrap()).unwrap();
        udp.set_nonblocking(true).unwrap();
        Self { tcp, udp }
    }

    /// `,"connect":"127.0.0.1:PORT"`, for the price-list page.
    pub fn page_member(&self) -> String {
        format!(r#","connect":"{}""#, self.tcp.local_addr().unwrap())
    }

    pub fn assert_nothing_arrived(&self) {
        assert!(
            matches!(self.tcp.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "the plugin connected to the host's port"
        );
        let mut buf = [0u8; 16];
        assert!(
            matches!(self.udp.recv_from(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "the plugin's datagram arrived"
        );
    }
}

/// Runs `plugin run` with `plugin` on a price list of one product plus the
/// `extra` members, with a variable in the environment and a line on stdin
/// that the plugin must not see; JSON logs at `info`.
pub fn run_nosy(plugin: &Path, extra: &str) -> NosyRun {
    use std::io::Write as _;

    let dir = tempfile::tempdir().unwrap();
    let snapshot = dir.path().join("snap");
    let page = format!(r#"{{"items":[{{"product_id":1}}]{extra}}}"#);
    super::write_snapshot(&snapshot, &[], &[&page]);
    let rows = dir.path().join("rows.jsonl");
    let mut child = super::bin()
        .args(["plugin", "run"])
        .arg(plugin)
        .arg("--from")
        .arg(&snapshot)
        .arg("--out")
        .arg(&rows)
        .env("NOSY_SECRET", "the host's environment")
        .env("RUST_LOG", "info")
        .env("LOG_FORMAT", "json")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"the host's stdin\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.stdout.is_empty(),
        "the plugin's output reached the host's stdout"
    );
    let seen = std::fs::read_to_string(&rows)
        .ok()
        .filter(|text| !text.trim().is_empty())
        .map(|text| {
            serde_json::from_str::<serde_json::Value>(text.trim()).unwrap()["data"].clone()
        });
    NosyRun {
        seen,
        log: String::from_utf8_lossy(&out.stderr).into_owned(),
        code: out.status.code(),
    }
}

/// The markers a nosy plugin writes reach the JSON log, tagged with the
/// plugin, the stream and its severity.
pub fn assert_markers_logged(log: &str, plugin: &str) {
    let entries: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|e: &serde_json::Value| e["plugin"] == plugin)
        .collect();
    for (marker, stream, severity) in [
        ("nosy-stdout-marker", "stdout", "INFO"),
        ("nosy-stderr-marker", "stderr", "WARNING"),
    ] {
        assert!(
            entries.iter().any(|e| e["message"] == marker
                && e["stream"] == stream
                && e["severity"] == severity),
            "{plugin} {marker}: {log}"
        );
    }
}
