//! `bitcram-sync plugin new`: each language's starter builds as it is, with
//! the toolchain its README names, and passes its own golden case under
//! `plugin test`; a directory that holds files is never written into.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support;

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A directory under the target directory, so that a Rust starter finds the
/// workspace's pinned toolchain (`rust-toolchain.toml`) above it.
fn scratch() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

/// `plugin new DIR --lang LANG`, which must succeed.
fn plugin_new(dir: &Path, lang: &str) {
    let out = support::bin()
        .args(["plugin", "new", "--lang", lang])
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).starts_with(&format!("created {}", dir.display())),
        "{}",
        stdout(&out)
    );
    for file in [
        "README.md",
        "wit/world.wit",
        "wit/types.wit",
        "wit/transformer.wit",
        "wit/log.wit",
        "cases/left-join-in-price-list-order/manifest.json",
        "cases/left-join-in-price-list-order/expected.jsonl",
    ] {
        assert!(dir.join(file).is_file(), "{file} was not written");
    }
    // The contract is the one this host accepts, byte for byte.
    for file in ["world.wit", "types.wit", "transformer.wit", "log.wit"] {
        assert_eq!(
            std::fs::read(dir.join("wit").join(file)).unwrap(),
            std::fs::read(support::workspace().join("wit/0.1.0").join(file)).unwrap(),
            "{file}"
        );
    }
}

/// Runs a build step in the starter's directory, which must succeed.
fn build(dir: &Path, command: &mut Command) {
    let out = command.current_dir(dir).output().unwrap();
    assert!(
        out.status.success(),
        "{command:?} failed: {}{}",
        stdout(&out),
        stderr(&out)
    );
}

/// `plugin test WASM --cases DIR/cases` passes the starter's one case, and
/// the component says it is `name`.
fn passes_its_case(dir: &Path, wasm: &Path, name: &str) {
    let plugin_test = || {
        support::bin()
            .args(["plugin", "test"])
            .arg(wasm)
            .arg("--cases")
            .arg(dir.join("cases"))
            .output()
            .unwrap()
    };
    let out = plugin_test();
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(
        text.lines()
            .any(|l| l.starts_with("PASS left-join-in-price-list-order (2 rows")),
        "{text}"
    );
    assert!(
        text.lines()
            .last()
            .unwrap()
            .starts_with(&format!("1 passed, 0 failed: {name} 0.1.0 (sha256 ")),
        "{text}"
    );
    // The case can fail: with another row expected, the same component fails it.
    let expected = dir.join("cases/left-join-in-price-list-order/expected.jsonl");
    let rows = std::fs::read_to_string(&expected).unwrap();
    std::fs::write(&expected, rows.replace("\"stock\":4", "\"stock\":5")).unwrap();
    let out = plugin_test();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    std::fs::write(&expected, rows).unwrap();
}

#[test]
fn the_rust_starter_builds_as_it_is_and_passes_its_golden_case() {
    let scratch = scratch();
    let dir = scratch.path().join("shop-prices");
    plugin_new(&dir, "rust");
    // One target directory for every run of this test, kept warm.
    let target: PathBuf = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("starter-rust");
    build(&dir, Command::new("cargo").args(["fmt", "--check"]));
    build(
        &dir,
        Command::new("cargo")
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "--offline",
            ])
            .env("CARGO_TARGET_DIR", &target),
    );
    let wasm = target.join("wasm32-wasip2/release/shop_prices.wasm");
    passes_its_case(&dir, &wasm, "shop-prices");
}

#[test]
fn the_python_starter_builds_as_it_is_and_passes_its_golden_case() {
    let scratch = scratch();
    let dir = scratch.path().join("shop-prices-py");
    plugin_new(&dir, "python");
    // The pinned componentize-py that plugins/examples/build.sh installs (the
    // version the starter's README names; a unit test keeps them equal).
    let componentize_py = support::examples_dir().join("py/bin/componentize-py");
    build(
        &dir,
        Command::new(componentize_py).args([
            "-d",
            "wit",
            "-w",
            "transform",
            "componentize",
            "app",
            "-o",
            "shop-prices-py.wasm",
        ]),
    );
    passes_its_case(&dir, &dir.join("shop-prices-py.wasm"), "shop-prices-py");
}

#[test]
fn the_javascript_starter_builds_as_it_is_and_passes_its_golden_case() {
    let scratch = scratch();
    let dir = scratch.path().join("shop-prices-js");
    plugin_new(&dir, "javascript");
    // What `npm ci` installs from the starter's lock file: the example's
    // lock, already installed by plugins/examples/build.sh.
    let lock = std::fs::read_to_string(dir.join("package-lock.json")).unwrap();
    let example_lock = std::fs::read_to_string(
        support::workspace().join("plugins/examples/javascript-transform/package-lock.json"),
    )
    .unwrap();
    assert_eq!(
        lock,
        example_lock.replace("javascript-transform", "shop-prices-js")
    );
    std::os::unix::fs::symlink(
        support::examples_dir().join("js/node_modules"),
        dir.join("node_modules"),
    )
    .unwrap();
    build(
        &dir,
        Command::new("node").args(["build.mjs", "shop-prices-js.wasm"]),
    );
    passes_its_case(&dir, &dir.join("shop-prices-js.wasm"), "shop-prices-js");
}

#[test]
fn plugin_new_never_writes_into_a_directory_that_holds_files() {
    let scratch = scratch();
    let dir = scratch.path().join("mine");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), "keep me").unwrap();
    let out = support::bin()
        .args(["plugin", "new", "--lang", "python"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!(
            "{} exists and is not empty; plugin new writes only into a new or empty directory",
            dir.display()
        )),
        "{err}"
    );
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert_eq!(left.len(), 1);
    assert_eq!(
        std::fs::read_to_string(dir.join("notes.txt")).unwrap(),
        "keep me"
    );
}

#[test]
fn a_name_that_cannot_be_a_package_name_is_refused_naming_it() {
    let scratch = scratch();
    // From --name: a usage error.
    let out = support::bin()
        .args(["plugin", "new", "--lang", "rust", "--name", "My Shop"])
        .arg(scratch.path().join("a"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("`My Shop` is not a plugin name"),
        "{}",
        stderr(&out)
    );
    // From the directory's name: the error says to give --name.
    let out = support::bin()
        .args(["plugin", "new", "--lang", "rust"])
        .arg(scratch.path().join("My_Shop"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("`My_Shop` is not a plugin name") && err.contains("give --name"),
        "{err}"
    );
    assert!(!scratch.path().join("a").exists());
    assert!(!scratch.path().join("My_Shop").exists());
    // With --name, any directory name does.
    let out = support::bin()
        .args(["plugin", "new", "--lang", "rust", "--name", "my-shop"])
        .arg(scratch.path().join("My_Shop"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let cargo = std::fs::read_to_string(scratch.path().join("My_Shop/Cargo.toml")).unwrap();
    assert!(cargo.contains("name = \"my-shop\""), "{cargo}");
}
