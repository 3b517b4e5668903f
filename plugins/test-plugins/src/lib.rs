//! Transform components that misbehave on purpose, for the host's sandbox
//! tests. Each build enables exactly one feature:
//!
//! - `spin`: `push` loops forever (the time budget must stop it);
//! - `hog`: `push` allocates without bound (the memory cap must stop it);
//! - `panic`: `push` panics (reported as a crash, with the plugin named);
//! - `sneaky`: imports `wasi:http/handler` (the gate must refuse
//!   it before it runs);
//! - `future`: built against `bitcram:transform@0.3.0`, a version this host
//!   does not know (refused at the gate);
//! - `rogue`: runs, but emits the rows its price-list page spells out, one
//!   per line as `id<TAB>data`, unchecked (the host must refuse bad rows); a
//!   line `#lie` makes its summary announce one row more than it returns,
//!   and a line `#fail MESSAGE` makes it write two lines to stderr (the
//!   last without its newline) and return MESSAGE as its error;
//! - `nosy`: looks at its environment, arguments and stdin, writes to its
//!   stdout and stderr, tries to read, list and create host files, to
//!   connect over TCP and send over UDP to the address its price-list page
//!   names (`"connect":"IP:PORT"`), and to look up a name; returns one row
//!   saying what it saw (the sandbox must show it nothing and let nothing
//!   out);
//! - `slow`: each `push` busy-waits 200 ms (the time budget is summed over
//!   calls, so several pushes together run out of it);
//! - `badinfo`: `info()` panics (the gate must refuse it);
//! - `alien`: a component for another world: it exports `test:alien/iface`
//!   and not the contract's `transformer` (the gate must refuse it, naming
//!   what it exports);
//! - `mistyped`: imports `bitcram:transform/log` with the wrong type (the
//!   gate's type check must refuse it).
//!
//! Natively the crate is empty: it only exists as components.

#![cfg(target_arch = "wasm32")]

#[cfg(not(any(
    feature = "future",
    feature = "rogue",
    feature = "nosy",
    feature = "mistyped",
    feature = "sneaky",
    feature = "alien"
)))]
mod current {
    wit_bindgen::generate!({
        path: "../../wit/0.1.0",
        world: "transform",
    });

    use bitcram::transform::types::{Row, RunContext, Source, Summary, TransformError};
    use exports::bitcram::transform::transformer::{Guest, GuestTransform, PluginInfo};

    struct Plugin;

    impl Guest for Plugin {
        type Transform = Misbehaving;

        fn info() -> PluginInfo {
            #[cfg(feature = "badinfo")]
            panic!("info() of test-{} fails on purpose", super::VARIANT);
            #[cfg(not(feature = "badinfo"))]
            PluginInfo {
                name: format!("test-{}", super::VARIANT),
                version: "0.0.0".to_owned(),
            }
        }
    }

    struct Misbehaving;

    impl GuestTransform for Misbehaving {
        fn new(_context: RunContext) -> Self {
            Misbehaving
        }

        fn push(&self, _source: Source, page: Vec<u8>) -> Result<(), TransformError> {
            super::misbehave(&page);
            Ok(())
        }

        fn finish(&self) -> Result<Summary, TransformError> {
            Ok(Summary {
                price_list_items: 0,
                stock_items: 0,
                dropped_stock_items: 0,
                rows: 0,
            })
        }

        fn next_batch(&self, _max_rows: u32) -> Result<Vec<Row>, TransformError> {
            Ok(Vec::new())
        }
    }

    export!(Plugin);
}

#[cfg(feature = "spin")]
const VARIANT: &str = "spin";
#[cfg(feature = "spin")]
fn misbehave(_page: &[u8]) {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

#[cfg(feature = "hog")]
const VARIANT: &str = "hog";
#[cfg(feature = "hog")]
fn misbehave(_page: &[u8]) {
    let mut hoard = Vec::new();
    loop {
        hoard.push(std::hint::black_box(vec![1u8; 1 << 20]));
    }
}

#[cfg(feature = "panic")]
const VARIANT: &str = "panic";
#[cfg(feature = "panic")]
fn misbehave(_page: &[u8]) {
    panic!("test plugin panicked on purpose");
}

#[cfg(feature = "slow")]
const VARIANT: &str = "slow";
#[cfg(feature = "slow")]
fn misbehave(_page: &[u8]) {
    let started = std::time::Instant::now();
    while started.elapsed() < std::time::Duration::from_millis(200) {
        std::hint::spin_loop();
    }
}

#[cfg(feature = "badinfo")]
const VARIANT: &str = "badinfo";
#[cfg(feature = "badinfo")]
fn misbehave(_page: &[u8]) {}

#[cfg(feature = "sneaky")]
mod sneaky {
    // Just enough of `wasi:http` for the component to import it; the gate
    // looks at import names before it type-checks anything.
    wit_bindgen::generate!({
        inline: r#"
            package test:sneaky;

            package wasi:http@0.3.0 {
                interface handler {
                    handle: func(request: string) -> u32;
                }
            }

            package bitcram:transform@0.1.0 {
                interface transformer {
                    info: func() -> string;
                }
            }

            world sneaky {
                import wasi:http/handler@0.3.0;
                export bitcram:transform/transformer@0.1.0;
            }
        "#,
        generate_all,
    });

    struct Plugin;

    impl exports::bitcram::transform::transformer::Guest for Plugin {
        fn info() -> String {
            let _ = wasi::http::handler::handle("https://example.com/");
            "test-sneaky".to_owned()
        }
    }

    export!(Plugin);
}

#[cfg(feature = "rogue")]
mod rogue {
    use std::cell::RefCell;

    wit_bindgen::generate!({
        path: "../../wit/0.1.0",
        world: "transform",
    });

    use bitcram::transform::types::{Row, RunContext, Source, Summary, TransformError};
    use exports::bitcram::transform::transformer::{Guest, GuestTransform, PluginInfo};

    struct Plugin;

    impl Guest for Plugin {
        type Transform = Rogue;

        fn info() -> PluginInfo {
            PluginInfo {
                name: "test-rogue".to_owned(),
                version: "0.0.0".to_owned(),
            }
        }
    }

    /// The rows not yet taken, and how many its summary announces.
    struct Rogue(RefCell<Vec<Row>>, RefCell<u64>);

    impl GuestTransform for Rogue {
        fn new(_context: RunContext) -> Self {
            Rogue(RefCell::new(Vec::new()), RefCell::new(0))
        }

        fn push(&self, source: Source, page: Vec<u8>) -> Result<(), TransformError> {
            if source == Source::PriceList {
                let text = String::from_utf8_lossy(&page);
                for line in text.lines().filter(|l| !l.is_empty()) {
                    // Counted here: the host may take rows before `finish`.
                    *self.1.borrow_mut() += 1;
                    if line == "#lie" {
                        continue;
                    }
                    if let Some(message) = line.strip_prefix("#fail ") {
                        eprintln!("rogue: giving up on this page");
                        eprint!("rogue: {message}");
                        return Err(TransformError::Other(message.to_owned()));
                    }
                    let (id, data) = line.split_once('\t').unwrap_or((line, "{}"));
                    self.0.borrow_mut().push(Row {
                        id: id.to_owned(),
                        data: data.to_owned(),
                        stock: 1,
                    });
                }
            }
            Ok(())
        }

        fn finish(&self) -> Result<Summary, TransformError> {
            let rows = *self.1.borrow();
            Ok(Summary {
                price_list_items: rows,
                stock_items: 0,
                dropped_stock_items: 0,
                rows,
            })
        }

        fn next_batch(&self, max_rows: u32) -> Result<Vec<Row>, TransformError> {
            let mut rows = self.0.borrow_mut();
            let take = rows.len().min(max_rows as usize);
            Ok(rows.drain(..take).collect())
        }
    }

    export!(Plugin);
}

#[cfg(feature = "future")]
mod future {
    wit_bindgen::generate!({
        inline: r#"
            package bitcram:transform@0.3.0;

            interface transformer {
                info: func() -> string;
            }

            world transform {
                export transformer;
            }
        "#,
    });

    struct Plugin;

    impl exports::bitcram::transform::transformer::Guest for Plugin {
        fn info() -> String {
            "test-future".to_owned()
        }
    }

    export!(Plugin);
}

#[cfg(feature = "nosy")]
mod nosy {
    use std::cell::RefCell;
    use std::io::{Read as _, Write as _};

    wit_bindgen::generate!({
        path: "../../wit/0.1.0",
        world: "transform",
    });

    use bitcram::transform::types::{Row, RunContext, Source, Summary, TransformError};
    use exports::bitcram::transform::transformer::{Guest, GuestTransform, PluginInfo};

    struct Plugin;

    impl Guest for Plugin {
        type Transform = Nosy;

        fn info() -> PluginInfo {
            PluginInfo {
                name: "test-nosy".to_owned(),
                version: "0.0.0".to_owned(),
            }
        }
    }

    /// The row it will return, and whether it made one.
    struct Nosy(RefCell<Option<Row>>, RefCell<u64>);

    /// A JSON string of `text`.
    fn quoted(text: &str) -> String {
        let mut out = String::from("\"");
        for c in text.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    /// `ok: …` or `error: …` for one attempt.
    fn outcome<T, E: std::fmt::Display>(result: Result<T, E>, ok: impl Fn(T) -> String) -> String {
        match result {
            Ok(value) => format!("ok: {}", ok(value)),
            Err(e) => format!("error: {e}"),
        }
    }

    /// Tries every way out of the sandbox it knows; says what each gave.
    fn reach_out(address: &str) -> Vec<(&'static str, String)> {
        use std::net::{TcpStream, ToSocketAddrs as _, UdpSocket};
        let target: std::net::SocketAddr = address.parse().expect("an IP:PORT address");
        vec![
            (
                "read",
                outcome(std::fs::read("/etc/passwd"), |b| {
                    format!("{} bytes", b.len())
                }),
            ),
            (
                "list",
                outcome(std::fs::read_dir("/"), |d| format!("{} entries", d.count())),
            ),
            (
                "create",
                outcome(std::fs::write("/tmp/nosy-was-here", b"x"), |()| {
                    "written".to_owned()
                }),
            ),
            (
                "connect",
                outcome(
                    TcpStream::connect_timeout(&target, std::time::Duration::from_secs(2)),
                    |_| "connected".to_owned(),
                ),
            ),
            (
                "udp",
                outcome(
                    UdpSocket::bind("0.0.0.0:0").and_then(|s| s.send_to(b"nosy", target)),
                    |n| format!("{n} bytes sent"),
                ),
            ),
            (
                "lookup",
                outcome("localhost:80".to_socket_addrs(), |a| {
                    format!("{} addresses", a.count())
                }),
            ),
        ]
    }

    fn list(items: impl Iterator<Item = String>) -> String {
        format!(
            "[{}]",
            items.map(|i| quoted(&i)).collect::<Vec<_>>().join(",")
        )
    }

    impl GuestTransform for Nosy {
        fn new(_context: RunContext) -> Self {
            Nosy(RefCell::new(None), RefCell::new(0))
        }

        fn push(&self, source: Source, page: Vec<u8>) -> Result<(), TransformError> {
            if source != Source::PriceList {
                return Ok(());
            }
            let page = String::from_utf8_lossy(&page);
            let address = page
                .split_once(r#""connect":""#)
                .and_then(|(_, rest)| rest.split_once('"'))
                .map(|(address, _)| address.to_owned())
                .unwrap_or_else(|| "127.0.0.1:9".to_owned());
            let _ = writeln!(std::io::stdout(), "nosy-stdout-marker");
            let _ = writeln!(std::io::stderr(), "nosy-stderr-marker");
            let env = list(std::env::vars().map(|(k, v)| format!("{k}={v}")));
            let args = list(std::env::args());
            let mut stdin = String::new();
            let _ = std::io::stdin().read_to_string(&mut stdin);
            let cwd = std::env::current_dir()
                .map(|d| d.display().to_string())
                .unwrap_or_default();
            let tried = reach_out(&address)
                .into_iter()
                .map(|(what, outcome)| format!(",{}:{}", quoted(what), quoted(&outcome)))
                .collect::<String>();
            *self.1.borrow_mut() = 1;
            *self.0.borrow_mut() = Some(Row {
                id: "seen".to_owned(),
                data: format!(
                    r#"{{"env":{env},"args":{args},"stdin":{},"cwd":{}{tried}}}"#,
                    quoted(&stdin),
                    quoted(&cwd)
                ),
                stock: 0,
            });
            Ok(())
        }

        fn finish(&self) -> Result<Summary, TransformError> {
            Ok(Summary {
                price_list_items: 1,
                stock_items: 0,
                dropped_stock_items: 0,
                rows: *self.1.borrow(),
            })
        }

        fn next_batch(&self, _max_rows: u32) -> Result<Vec<Row>, TransformError> {
            Ok(self.0.borrow_mut().take().into_iter().collect())
        }
    }

    export!(Plugin);
}

#[cfg(feature = "mistyped")]
mod mistyped {
    wit_bindgen::generate!({
        inline: r#"
            package bitcram:transform@0.1.0;

            interface log {
                log: func(message: u32);
            }

            interface transformer {
                info: func() -> string;
            }

            world transform {
                import log;
                export transformer;
            }
        "#,
    });

    struct Plugin;

    impl exports::bitcram::transform::transformer::Guest for Plugin {
        fn info() -> String {
            bitcram::transform::log::log(7);
            "test-mistyped".to_owned()
        }
    }

    export!(Plugin);
}

#[cfg(feature = "alien")]
mod alien {
    wit_bindgen::generate!({
        inline: r#"
            package test:alien;

            interface iface {
                answer: func() -> u32;
            }

            world alien {
                export iface;
            }
        "#,
    });

    struct Plugin;

    impl exports::test::alien::iface::Guest for Plugin {
        fn answer() -> u32 {
            42
        }
    }

    export!(Plugin);
}
