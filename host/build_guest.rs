// Shared by host/build.rs and the integration tests' support (through
// `include!`): builds a workspace crate as a wasm32-wasip2 component with
// the `guest` profile, adding the target first where rustup lacks it.

/// Builds `package` with `features` (none: its defaults) and copies its
/// `.wasm` to `out`, so that builds with other features do not overwrite it.
fn build_guest(package: &str, features: &[&str], out: &std::path::Path) {
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
    add_wasm_target(&workspace);
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
    std::fs::copy(&built, out).unwrap_or_else(|e| panic!("copying {}: {e}", built.display()));
}

/// Adds the wasm32-wasip2 target with rustup when the toolchain lacks it,
/// so that a fresh checkout builds with one command (rustup does not add a
/// `rust-toolchain.toml`'s targets on machines that set
/// RUSTUP_AUTO_INSTALL=0). Without rustup, the build's own error says what
/// is missing.
fn add_wasm_target(workspace: &std::path::Path) {
    use std::process::Command;

    let installed = Command::new("rustup")
        .current_dir(workspace)
        .args(["target", "list", "--installed"])
        .output();
    let Ok(installed) = installed else {
        return;
    };
    if String::from_utf8_lossy(&installed.stdout).lines().any(|t| t.trim() == "wasm32-wasip2") {
        return;
    }
    let added = Command::new("rustup")
        .current_dir(workspace)
        .args(["target", "add", "wasm32-wasip2"])
        .output();
    // Quiet on success: cargo would repeat a build-script warning on every
    // later build of the host.
    match added {
        Ok(out) if out.status.success() => {}
        _ => panic!("the wasm32-wasip2 target is missing and rustup could not add it: run `rustup target add wasm32-wasip2`"),
    }
}
