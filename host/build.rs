//! Builds the default transform component (`plugins/bitcram-transform`) for
//! wasm32-wasip2 so that the binary carries it: `include_bytes!` in
//! `src/plugin/mod.rs` embeds the file named by `BITCRAM_DEFAULT_PLUGIN_WASM`.

include!("build_guest.rs");

fn main() {
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").unwrap())
        .join("bitcram_transform.wasm");
    build_guest("bitcram-transform", &[], &out);
    println!(
        "cargo:rustc-env=BITCRAM_DEFAULT_PLUGIN_WASM={}",
        out.display()
    );
    println!("cargo:rerun-if-changed=../plugins/bitcram-transform/src");
    println!("cargo:rerun-if-changed=../plugins/bitcram-transform/Cargo.toml");
    println!("cargo:rerun-if-changed=../wit");
    println!("cargo:rerun-if-changed=../Cargo.lock");
    println!("cargo:rerun-if-changed=build_guest.rs");
}
