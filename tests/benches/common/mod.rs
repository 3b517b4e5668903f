//! Shared by the benchmarks: the generated Bitcram bodies (deterministic, from
//! a seeded PRNG), medians and verdicts, and measuring a child process's wall
//! time and peak RSS.
//!
//! Peak RSS comes from `wait4`'s `ru_maxrss`. Linux folds the parent's own
//! high-water RSS into a child's `ru_maxrss` when the child is spawned (with
//! `vfork`/`posix_spawn` the exec records the parent's peak; with `fork` the
//! copied pages count), so a benchmark holding 100 MB of generated bodies
//! would report every child as at least that big. [`measure`] therefore
//! spawns a fresh, small launcher (this same executable, started with
//! [`MEASURE_ARG`]) that spawns the measured program and reaps it; only the
//! launcher's own start-up RSS leaks into the figure, and the benchmarks
//! report that floor as a baseline.

#![allow(dead_code)]

pub mod database;
pub mod stand_in;

use std::ffi::{OsStr, OsString};
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use bitcram_sync::model::{RunInfo, Source};
use serde_json::json;

/// Items in the generated price list.
pub const PRODUCTS: usize = 100_000;
/// The checkout the generated bodies describe.
pub const CHECKOUT_NUMBER: &str = "3";
pub const CHECKOUT_ID: u64 = 17;
pub const WAREHOUSE_ID: u64 = 5;
/// Price-list items repriced in the "3% changed" catalog.
pub const REPRICED: usize = 3_000;
/// The seed of every generated body.
const SEED: u64 = 0x00b1_7c4a_2026;

/// The first argument that makes a benchmark executable act as the launcher
/// of [`measure`].
pub const MEASURE_ARG: &str = "__measure";

/// SplitMix64: tiny, fast, and the same numbers on every machine.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// The product id of the `index`-th price-list item: sparse, like a real
/// catalog that has lost products over the years.
pub fn product_id(index: usize) -> u64 {
    200_000 + index as u64 * 3
}

/// The three response bodies of one run.
pub struct Bodies {
    pub checkout: Vec<u8>,
    pub stock: Vec<u8>,
    pub price_list: Vec<u8>,
}

impl Bodies {
    /// The bodies for [`PRODUCTS`] products, `repriced` of them with another
    /// price than in the base catalog.
    pub fn generate(repriced: usize) -> Self {
        Self {
            checkout: checkout_body(),
            stock: stock_body(PRODUCTS),
            price_list: price_list_body(PRODUCTS, repriced),
        }
    }

    /// Stock and price list: what the two large calls download.
    pub fn large_bytes(&self) -> usize {
        self.stock.len() + self.price_list.len()
    }
}

/// The checkout discovery response for checkout [`CHECKOUT_NUMBER`].
pub fn checkout_body() -> Vec<u8> {
    json!({ "items": [{
        "id": CHECKOUT_ID,
        "checkout_number": 3,
        "name": "Caja 3 - Salón",
        "is_open": true,
        "warehouse": { "id": WAREHOUSE_ID, "name": "Depósito Central" },
        "price_list": { "id": 248 },
        "last_checkout_session": { "id": 9876 },
    }]})
    .to_string()
    .into_bytes()
}

const PRODUCT_NOUNS: &[&str] = &[
    "Café Tostado Molido",
    "Té de Manzanilla",
    "Yerba Mate",
    "Queso Mar del Plata",
    "Jamón Cocido Natural",
    "Alfajor Triple de Dulce de Leche",
    "Caramelos Ácidos \"Limón\"",
    "Cafetera Italiana",
    "Galletitas de Avena",
    "Aceite de Girasol",
    "Azúcar Orgánica",
    "Harina 0000",
    "Fideos Tirabuzón",
    "Pan Lácteo",
    "Jabón en Polvo",
    "Champú Nutritivo",
    "Leche Descremada",
    "Mermelada de Durazno",
    "Atún en Aceite",
    "Lavandina Concentrada",
];
const PRODUCT_QUALIFIERS: &[&str] = &[
    "Suave",
    "Intenso",
    "Clásico",
    "Light",
    "sin TACC",
    "Orgánico",
    "Ñandú",
    "Güemes",
    "Premium",
    "Económico",
    "Edición Otoño",
    "Cosecha Tardía",
];
const PRODUCT_SIZES: &[&str] = &[
    "500 g",
    "1 kg",
    "x 25 saquitos",
    "1,5 L",
    "(por kg)",
    "x 12 u.",
    "6 tazas",
    "250 ml",
    "3 x 90 g",
];
/// (type id, path, node left)
const PRODUCT_TYPES: &[(u64, &str, u64)] = &[
    (12, "Almacén > Infusiones", 37),
    (13, "Almacén > Aceites y Aderezos", 41),
    (14, "Almacén > Harinas y Pastas", 45),
    (15, "Almacén > Conservas", 49),
    (21, "Lácteos > Leches", 63),
    (22, "Lácteos > Untables y Dulces", 67),
    (31, "Fiambrería > Quesos", 94),
    (32, "Fiambrería > Fiambres", 98),
    (44, "Golosinas", 133),
    (45, "Panadería y Galletitas", 137),
    (52, "Bazar > Cocina", 157),
    (61, "Limpieza > Ropa", 181),
    (62, "Limpieza > Hogar", 185),
    (71, "Perfumería > Cuidado del Cabello", 211),
];
const BRANDS: &[&str] = &[
    "La Serenísima",
    "Güemes",
    "Don Satur",
    "Ñandú",
    "Cañuelas",
    "Molinos Río de la Plata",
    "Sancor",
    "Arcor",
];
const TAGS: &[&str] = &[
    "sin TACC",
    "oferta",
    "nuevo",
    "importado",
    "apto vegano",
    "envío rápido",
];

/// A price-list body of `products` items of about 15 fields each, like
/// Bitcram's: accented names, some null prices and images, unknown fields.
/// Each item has its own random stream, so repricing some items leaves
/// every other byte as it was; the `repriced` items, spread evenly, get
/// another price.
pub fn price_list_body(products: usize, repriced: usize) -> Vec<u8> {
    let stride = products.checked_div(repriced).unwrap_or(usize::MAX);
    let mut out = Vec::with_capacity(products * 480);
    out.extend_from_slice(b"{\"items\":[");
    for index in 0..products {
        if index > 0 {
            out.push(b',');
        }
        let mut rng = Rng::new(SEED ^ (index as u64).wrapping_mul(0x2545_f491_4f6c_dd1d));
        let id = product_id(index);
        let code = format!("779{:010}", rng.below(10_000_000_000));
        let mut price = (!rng.chance(5)).then(|| rng.below(20_000_000) as f64 / 100.0);
        if index % stride == 0 && index / stride < repriced {
            price = Some(price.map_or(100.0, |p| p + 1.25));
        }
        let name = format!(
            "{} {} {}",
            rng.pick(PRODUCT_NOUNS),
            rng.pick(PRODUCT_QUALIFIERS),
            rng.pick(PRODUCT_SIZES)
        );
        let image =
            (!rng.chance(30)).then(|| format!("https://cdn.bitcram.example/img/{id}_b.jpg"));
        let (type_id, type_path, node_left) = *rng.pick(PRODUCT_TYPES);
        let tags: Vec<&str> = (0..rng.below(2)).map(|_| *rng.pick(TAGS)).collect();
        let mut item = json!({
            "product_id": id,
            "price": price,
            "product_code": code,
            "product_name": name,
            "product_image_b_format_url": image,
            "product_type_id": type_id,
            "product_type_path": type_path,
            "product_use_stock": !rng.chance(5),
            "product_sale_type_id": 1 + rng.below(2),
            "product_search_codes": format!("{code} {}", id % 100_000),
            "product_type_node_left": node_left,
            "product_change_cost_on_sales": rng.chance(3),
            "product_tags": tags,
        });
        if rng.chance(50) {
            item["product_brand"] = (*rng.pick(BRANDS)).into();
        }
        if rng.chance(20) {
            item["product_notes"] = match rng.below(2) {
                0 => serde_json::Value::Null,
                _ => "Consultar disponibilidad en sucursal".into(),
            };
        }
        serde_json::to_writer(&mut out, &item).expect("writing JSON to a Vec cannot fail");
    }
    out.extend_from_slice(b"]}");
    out
}

/// A stock body for a catalog of `products`: of every 20 products, 17 have a
/// stock row, and one row names a product that is not in the catalog
/// (90,000 rows for 100,000 products). Rows name the product by
/// `product_id`, `product.id` or both; balances are whole, fractional or
/// negative.
pub fn stock_body(products: usize) -> Vec<u8> {
    let mut rng = Rng::new(SEED ^ 0x5f0c);
    let mut out = Vec::with_capacity(products * 45);
    out.extend_from_slice(b"{\"items\":[");
    let mut first = true;
    for index in 0..products {
        let id = match index % 20 {
            0..=16 => product_id(index),
            17 => product_id(products + index),
            _ => continue,
        };
        if !first {
            out.push(b',');
        }
        first = false;
        let balance = match rng.below(100) {
            0..=69 => rng.below(500).to_string(),
            70..=84 => format!("{}.{:02}", rng.below(50), 1 + rng.below(99)),
            85..=94 => format!("-{}", 1 + rng.below(20)),
            _ => format!("-0.{}", 1 + rng.below(9)),
        };
        let reference = match rng.below(10) {
            0 => format!("\"product\":{{\"id\":{id}}}"),
            1 => format!("\"product_id\":{id}"),
            _ => format!("\"product_id\":{id},\"product\":{{\"id\":{id}}}"),
        };
        out.extend_from_slice(
            format!(
                "{{{reference},\"warehouse_id\":{WAREHOUSE_ID},\"product_balance\":{balance}}}"
            )
            .as_bytes(),
        );
    }
    out.extend_from_slice(b"]}");
    out
}

/// A snapshot directory holding `bodies`, as `bitcram-sync snapshot` writes it
/// (`manifest.json` and one file per body, with their sizes and sha256).
pub fn write_snapshot(dir: &Path, bodies: &Bodies) -> anyhow::Result<()> {
    let info = RunInfo {
        created_at: "2026-11-28T09:23:00.000000Z".to_owned(),
        bitcram_url: "https://bench.bitcram.invalid".to_owned(),
        checkout_number: CHECKOUT_NUMBER.to_owned(),
        checkout_id: CHECKOUT_ID,
        warehouse_id: WAREHOUSE_ID,
    };
    bitcram_sync::snapshot::write(
        dir,
        &info,
        [
            (Source::Checkout, bodies.checkout.as_slice()),
            (Source::Stock, bodies.stock.as_slice()),
            (Source::PriceList, bodies.price_list.as_slice()),
        ],
    )?;
    Ok(())
}

/// The binary under test: the one cargo built for the benchmark, with the
/// release settings (the bench profile inherits them).
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_bitcram-sync"))
}

/// Clears the settings the binary would read from the environment.
pub trait ClearSettings {
    fn env_clear_settings(&mut self) -> &mut Self;
}

impl ClearSettings for Command {
    fn env_clear_settings(&mut self) -> &mut Self {
        for var in bitcram_sync::cli::environment_settings() {
            self.env_remove(var);
        }
        // sqlx warns of every statement over 1 s: large loads and the
        // benchmarks' procedures often are.
        self.env("RUST_LOG", "warn,sqlx::query=error")
    }
}

/// Items in a list body (`{"items":[...]}`), counted by parsing it.
pub fn count_items(body: &[u8]) -> anyhow::Result<usize> {
    #[derive(serde::Deserialize)]
    struct List {
        items: Vec<serde::de::IgnoredAny>,
    }
    let list: List = serde_json::from_slice(body).context("a generated body is not a list")?;
    Ok(list.items.len())
}

/// The middle value (the lower middle of an even count).
pub fn median<T: Copy + Ord>(values: &[T]) -> T {
    assert!(!values.is_empty(), "a median of nothing");
    let mut sorted = values.to_vec();
    sorted.sort();
    sorted[(sorted.len() - 1) / 2]
}

/// `met` or `NOT met`.
pub fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}

/// Milliseconds with one decimal.
pub fn ms(duration: Duration) -> String {
    format!("{:.1} ms", duration.as_secs_f64() * 1000.0)
}

/// Megabytes (10^6 bytes) with one decimal.
pub fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// What one measured child did.
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    /// From spawn to reaping.
    pub wall: Duration,
    /// `ru_maxrss`, in bytes.
    pub peak_rss_bytes: u64,
    /// CPU time, user and system (`ru_utime` + `ru_stime`).
    pub cpu: Duration,
}

/// Runs `program` with `args` through a fresh launcher process (see the
/// module docs) and returns its wall time and peak RSS. `configure` sets the
/// environment and working directory, which the program inherits. The
/// program's stdout is discarded and its stderr shown; anything but exit
/// status 0 is an error.
pub fn measure(
    program: impl AsRef<OsStr>,
    args: &[&OsStr],
    configure: impl FnOnce(&mut Command),
) -> anyhow::Result<Measured> {
    let program = program.as_ref();
    let exe = std::env::current_exe().context("locating the benchmark executable")?;
    let mut launcher = Command::new(exe);
    launcher.arg(MEASURE_ARG).arg(program).args(args);
    configure(&mut launcher);
    let output = launcher
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("starting the launcher for {}", program.to_string_lossy()))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let fields: Vec<&str> = text.split_whitespace().collect();
    let [wall_ns, maxrss_kib, cpu_us, status] = fields[..] else {
        bail!(
            "the launcher for {} failed ({}): {text:?}",
            program.to_string_lossy(),
            output.status
        );
    };
    if status != "exit:0" {
        bail!(
            "{} {} ended with {status}",
            program.to_string_lossy(),
            args.iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    Ok(Measured {
        wall: Duration::from_nanos(wall_ns.parse()?),
        peak_rss_bytes: maxrss_kib.parse::<u64>()? * 1024,
        cpu: Duration::from_micros(cpu_us.parse()?),
    })
}

/// If this process was started as the launcher of [`measure`], runs the
/// program it names, prints `WALL_NS MAXRSS_KIB CPU_US STATUS` and exits.
pub fn run_launcher_if_asked() {
    let args: Vec<OsString> = std::env::args_os().collect();
    if args.get(1).is_none_or(|a| a != MEASURE_ARG) {
        return;
    }
    match launch(&args[2..]) {
        Ok(line) => {
            println!("{line}");
            std::process::exit(0);
        }
        Err(e) => {
            eprintln!("launcher: {e:#}");
            std::process::exit(1);
        }
    }
}

fn launch(args: &[OsString]) -> anyhow::Result<String> {
    let (program, rest) = args
        .split_first()
        .ok_or_else(|| anyhow!("no program to run"))?;
    let started = Instant::now();
    let child = Command::new(program)
        .args(rest)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", program.to_string_lossy()))?;
    let pid = libc::pid_t::try_from(child.id()).context("a pid out of range")?;
    let mut status: libc::c_int = 0;
    // SAFETY: `rusage` is plain integers, for which all zeroes is valid.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: both pointers are to live locals of the right types; the
        // pid is our own unreaped child (`Child` never waits on drop).
        let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if reaped == pid {
            break;
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error).context("waiting for the measured program");
        }
    }
    let wall = started.elapsed();
    drop(child);
    let status = if libc::WIFEXITED(status) {
        format!("exit:{}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        format!("signal:{}", libc::WTERMSIG(status))
    } else {
        format!("status:{status}")
    };
    let micros = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    let cpu_us = micros(usage.ru_utime) + micros(usage.ru_stime);
    Ok(format!(
        "{} {} {cpu_us} {status}",
        wall.as_nanos(),
        usage.ru_maxrss
    ))
}
