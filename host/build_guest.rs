// Shared by host/build.rs and tests/build.rs (through `include!`): builds a
// workspace crate as a wasm32-wasip2 component with the `guest` profile.

/// Builds `package` with `features` and returns the path of its `.wasm`,
/// copied to `OUT_DIR/<out_name>.wasm` so that builds with other features do
/// not overwrite it.
fn build_guest(package: &str, features: &[&str], out_name: &str) -> std::path::PathBuf {
    use std::path::PathBuf;
    use std::process::Command;

    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest_dir.parent().unwrap().to_path_buf();
    // The outer build holds the lock on its own target directory: the inner
    // cargo gets a directory of its own, kept between builds so it stays warm.
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"))
        .join("guest");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&workspace)
        .args(["build", "--quiet", "--target", "wasm32-wasip2", "--profile", "guest", "-p", package])
        .arg("--target-dir")
        .arg(&target_dir);
    if !features.is_empty() {
        cmd.args(["--no-default-features", "--features", &features.join(",")]);
    }
    // Flags and wrappers meant for the host build (clippy's driver, coverage
    // flags) must not leak into the guest build.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_PROFILE_RELEASE_LTO",
    ] {
        cmd.env_remove(var);
    }
    let output = cmd.output().expect("running cargo to build a transform component");
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        if stderr.contains("wasm32-wasip2") && (stderr.contains("not installed") || stderr.contains("can't find crate")) {
            panic!("the wasm32-wasip2 target is missing: run `rustup target add wasm32-wasip2`\n{stderr}");
        }
        panic!("building the {package} component failed:\n{stderr}");
    }
    let built = target_dir
        .join("wasm32-wasip2")
        .join("guest")
        .join(format!("{}.wasm", package.replace('-', "_")));
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap()).join(format!("{out_name}.wasm"));
    std::fs::copy(&built, &out).unwrap_or_else(|e| panic!("copying {}: {e}", built.display()));
    println!("cargo:rerun-if-changed={}", workspace.join("wit").display());
    println!("cargo:rerun-if-changed={}", workspace.join("Cargo.lock").display());
    out
}
