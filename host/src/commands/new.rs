//! `bitcram-sync plugin new`: a starter transform project, in Rust, Python
//! or JavaScript, that builds as it is: the contract's WIT, the glue, a
//! transform of a few plain rules, one golden case, and a README with its
//! build and test commands.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use serde_json::json;

use crate::cli::{StarterLanguage, check_plugin_name};
use crate::model::{RunInfo, Source};
use crate::snapshot;

/// The contract, as this host accepts it, file by file.
const CONTRACT: [(&str, &str); 4] = [
    ("log.wit", include_str!("../../../wit/0.1.0/log.wit")),
    (
        "transformer.wit",
        include_str!("../../../wit/0.1.0/transformer.wit"),
    ),
    ("types.wit", include_str!("../../../wit/0.1.0/types.wit")),
    ("world.wit", include_str!("../../../wit/0.1.0/world.wit")),
];

/// The wit-bindgen the Rust starter depends on: the one the default
/// component is built with.
pub const WIT_BINDGEN_VERSION: &str = "0.62";
/// The componentize-py the Python starter is built with: the one
/// `plugins/examples/build.sh` pins.
pub const COMPONENTIZE_PY_VERSION: &str = "0.25.1";
/// componentize-js and its shim, pinned by the JavaScript example's
/// `package.json` and lock file, which the JavaScript starter reuses.
const JS_PACKAGE_JSON: &str =
    include_str!("../../../plugins/examples/javascript-transform/package.json");
const JS_PACKAGE_LOCK: &str =
    include_str!("../../../plugins/examples/javascript-transform/package-lock.json");
const JS_EXAMPLE_NAME: &str = "javascript-transform";

const README: &str = include_str!("starters/README.md");

/// The name of the golden case a starter comes with.
pub const STARTER_CASE: &str = "left-join-in-price-list-order";

/// Writes a starter project into `dir`, which must be new or empty.
pub(super) fn new(
    dir: &Path,
    language: StarterLanguage,
    name: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let name = match name {
        Some(name) => name.to_owned(),
        None => {
            let base = dir.file_name().and_then(|n| n.to_str()).with_context(|| {
                format!(
                    "{} has no file name to name the plugin by; give --name",
                    dir.display()
                )
            })?;
            check_plugin_name(base).map_err(|e| anyhow::anyhow!("{e}; give --name"))?;
            base.to_owned()
        }
    };
    if let Ok(mut entries) = std::fs::read_dir(dir) {
        if entries.next().is_some() {
            bail!(
                "{} exists and is not empty; plugin new writes only into a new or empty directory",
                dir.display()
            );
        }
    } else if dir.exists() {
        bail!("{} exists and is not a directory", dir.display());
    }
    let starter = Starter::new(language, &name);
    for (path, text) in &starter.files {
        write_new(&dir.join(path), text.as_bytes())?;
    }
    for (file, text) in CONTRACT {
        write_new(&dir.join("wit").join(file), text.as_bytes())?;
    }
    write_case(&dir.join("cases").join(STARTER_CASE))?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "created {} ({}, plugin {name})",
        dir.display(),
        language.title()
    )?;
    writeln!(
        out,
        "build:  cd {} && {}",
        dir.display(),
        starter.build.replace('\n', " && ")
    )?;
    writeln!(
        out,
        "test:   bitcram-sync plugin test {} --cases cases",
        starter.wasm
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Creates `path` (and its parents) with `bytes`; never replaces a file.
fn write_new(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))
}

/// What one language's starter consists of.
struct Starter {
    /// Files relative to the project, with their text.
    files: Vec<(PathBuf, String)>,
    /// The build commands, one per line.
    build: String,
    /// The component the build writes, relative to the project.
    wasm: String,
}

impl Starter {
    fn new(language: StarterLanguage, name: &str) -> Self {
        let fill = |template: &str| template.replace("{{name}}", name);
        let (files, build, wasm, rules_file, listing) = match language {
            StarterLanguage::Rust => {
                let wasm = format!(
                    "target/wasm32-wasip2/release/{}.wasm",
                    name.replace('-', "_")
                );
                (
                    vec![
                        (
                            "Cargo.toml",
                            fill(include_str!("starters/rust/Cargo.toml"))
                                .replace("{{wit_bindgen}}", WIT_BINDGEN_VERSION),
                        ),
                        ("src/lib.rs", fill(include_str!("starters/rust/lib.rs"))),
                        (
                            ".gitignore",
                            include_str!("starters/rust/gitignore").to_owned(),
                        ),
                    ],
                    "rustup target add wasm32-wasip2\ncargo build --release --target wasm32-wasip2"
                        .to_owned(),
                    wasm,
                    "`src/lib.rs` (`Transform::push`)",
                    "- `Cargo.toml`, `src/lib.rs`: the component; wit-bindgen generates the contract's types \
                     from `wit/`.\n",
                )
            }
            StarterLanguage::Python => (
                vec![
                    ("app.py", fill(include_str!("starters/python/app.py"))),
                    (
                        "transformer.py",
                        fill(include_str!("starters/python/transformer.py")),
                    ),
                    (
                        ".gitignore",
                        include_str!("starters/python/gitignore").to_owned(),
                    ),
                ],
                format!(
                    "python3 -m venv .venv && .venv/bin/pip install componentize-py=={COMPONENTIZE_PY_VERSION}\n\
                     .venv/bin/componentize-py -d wit -w transform componentize app -o {name}.wasm"
                ),
                format!("{name}.wasm"),
                "`transformer.py` (`Transform.push`)",
                "- `app.py`: the world's export (`info`); `transformer.py`: the `transform` resource. \
                 componentize-py generates the contract's types (`wit_world`) from `wit/`.\n",
            ),
            StarterLanguage::Javascript => (
                vec![
                    (
                        "transform.js",
                        fill(include_str!("starters/javascript/transform.js")),
                    ),
                    (
                        "build.mjs",
                        fill(include_str!("starters/javascript/build.mjs")),
                    ),
                    (
                        "package.json",
                        JS_PACKAGE_JSON.replace(JS_EXAMPLE_NAME, name),
                    ),
                    (
                        "package-lock.json",
                        JS_PACKAGE_LOCK.replace(JS_EXAMPLE_NAME, name),
                    ),
                    (
                        ".gitignore",
                        include_str!("starters/javascript/gitignore").to_owned(),
                    ),
                ],
                format!("npm ci\nnode build.mjs {name}.wasm"),
                format!("{name}.wasm"),
                "`transform.js` (`push`)",
                "- `transform.js`: the component (`transformer.info` and the `Transform` class); \
                 `build.mjs` builds it with componentize-js, pinned by `package-lock.json`.\n",
            ),
        };
        let readme = fill(README)
            .replace("{{language}}", language.title())
            .replace("{{lang}}", language.flag())
            .replace("{{rules_file}}", rules_file)
            .replace("{{files}}", listing)
            .replace("{{build}}", &build)
            .replace("{{wasm}}", &wasm);
        let mut files: Vec<(PathBuf, String)> = files
            .into_iter()
            .map(|(path, text)| (PathBuf::from(path), text))
            .collect();
        files.push((PathBuf::from("README.md"), readme));
        Starter { files, build, wasm }
    }
}

/// The starter's golden case: a left join in price-list order, written as
/// `bitcram-sync snapshot` writes a snapshot, with the rows the starter's
/// rules give.
fn write_case(dir: &Path) -> anyhow::Result<()> {
    let checkout = json!({"items": [{
        "id": 17, "checkout_number": 3, "name": "Caja 3",
        "warehouse": {"id": 5}, "price_list": {"id": 248},
    }]});
    let stock = json!({"items": [
        {"product_id": 1, "warehouse_id": 5, "product_balance": 4.5},
        {"product_id": 9, "warehouse_id": 5, "product_balance": 2},
    ]});
    let price_list = json!({"items": [
        {"product_id": 3, "product_name": "Té verde", "price": 30.5},
        {"product_id": 1, "product_name": "Yerba mate", "price": 10},
    ]});
    let expected = [
        json!({"id": "3", "stock": 0, "data": {"product_name": "Té verde", "price": 30.5}}),
        json!({"id": "1", "stock": 4, "data": {"product_name": "Yerba mate", "price": 10}}),
    ];
    let bodies = [
        (Source::Checkout, checkout.to_string().into_bytes()),
        (Source::Stock, stock.to_string().into_bytes()),
        (Source::PriceList, price_list.to_string().into_bytes()),
    ];
    let info = RunInfo {
        created_at: "2026-12-01T00:00:00.000000Z".to_owned(),
        bitcram_url: "https://cases.bitcram.invalid".to_owned(),
        checkout_number: "3".to_owned(),
        checkout_id: 17,
        warehouse_id: 5,
    };
    snapshot::write(dir, &info, bodies.iter().map(|(s, b)| (*s, b.as_slice())))?;
    let mut lines = String::new();
    for row in expected {
        lines.push_str(&row.to_string());
        lines.push('\n');
    }
    write_new(&dir.join("expected.jsonl"), lines.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace_file(path: &str) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn the_starters_pin_the_versions_the_repository_builds_with() {
        let workspace = workspace_file("Cargo.toml");
        let wit_bindgen = format!("wit-bindgen = {{ version = \"{WIT_BINDGEN_VERSION}\"");
        assert!(
            workspace.contains(&wit_bindgen),
            "Cargo.toml has no `{wit_bindgen}`"
        );
        let build_sh = workspace_file("plugins/examples/build.sh");
        let pin = format!("COMPONENTIZE_PY_VERSION={COMPONENTIZE_PY_VERSION}\n");
        assert!(build_sh.contains(&pin), "build.sh has no `{pin}`");
        assert!(JS_PACKAGE_JSON.contains(&format!("\"name\": \"{JS_EXAMPLE_NAME}\"")));
    }
}
