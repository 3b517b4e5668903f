//! Builds the default transform component (`plugins/bitcram-transform`) for
//! wasm32-wasip2 so that the binary carries it: `include_bytes!` in
//! `src/plugin/mod.rs` embeds the file named by `BITCRAM_DEFAULT_PLUGIN_WASM`.

include!("build_guest.rs");

fn main() {
    let wasm = build_guest("bitcram-transform", &[], "bitcram_transform");
    println!(
        "cargo:rustc-env=BITCRAM_DEFAULT_PLUGIN_WASM={}",
        wasm.display()
    );
    println!("cargo:rerun-if-changed=../plugins/bitcram-transform/src");
    println!("cargo:rerun-if-changed=../plugins/bitcram-transform/Cargo.toml");
    println!("cargo:rerun-if-changed=build_guest.rs");
}
