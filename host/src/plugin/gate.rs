//! The checks a component must pass before it may run: file format, the
//! exported contract and its version, and the imports it asks for.

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;

use super::{CONTRACT_PACKAGE, CONTRACT_VERSIONS};

/// Interface families of WASI that a transform may import. Language
/// runtimes link them even when the transform uses none (Rust's standard
/// library links `wasi:cli` and `wasi:io`; CPython's WASI build links
/// `wasi:filesystem` and `wasi:sockets` too). The host provides each of them
/// empty or denying (see `state.rs`): no preopened directory, every address
/// and name lookup refused, no environment, no arguments, empty stdin.
/// `wasi:http` and everything else outside WASI and the contract is refused.
const ALLOWED_WASI_PREFIXES: &[&str] = &[
    "wasi:cli/",
    "wasi:io/",
    "wasi:clocks/",
    "wasi:random/",
    "wasi:filesystem/",
    "wasi:sockets/",
];

/// The exported interface that makes a component a transform.
const EXPORTED_INTERFACE: &str = "transformer";
/// The only contract interface a transform may import besides `types`.
const IMPORTED_INTERFACES: &[&str] = &["log", "types"];

pub(super) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Refuses anything that is not a WebAssembly component.
pub(super) fn check_format(bytes: &[u8]) -> Result<(), String> {
    const MAGIC: &[u8] = b"\0asm";
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        return Err(
            "it is not a WebAssembly file (expected a component built for wasm32-wasip2)"
                .to_owned(),
        );
    }
    match bytes[4..8] {
        [0x01, 0x00, 0x00, 0x00] => Err(
            "it is a core WebAssembly module, not a component: build it for the wasm32-wasip2 target \
             (or wrap it with `wasm-tools component new`)"
                .to_owned(),
        ),
        [_, _, 0x01, 0x00] => Ok(()),
        _ => Err("it has an unknown WebAssembly binary version".to_owned()),
    }
}

/// Checks that the component exports `bitcram:transform/transformer` at a
/// version this host accepts and imports nothing outside the contract (of
/// that same version). Returns the package version it was built against.
pub(super) fn check_contract(engine: &Engine, component: &Component) -> Result<String, String> {
    let ty = component.component_type();

    let mut found_versions = Vec::new();
    let mut instance_exports = Vec::new();
    for (name, item) in ty.exports(engine) {
        if !matches!(item.ty, ComponentItem::ComponentInstance(_)) {
            continue;
        }
        instance_exports.push(name.to_owned());
        if let Some(version) = contract_version(name, EXPORTED_INTERFACE) {
            found_versions.push(version.to_owned());
        }
    }
    let Some(version) = found_versions
        .iter()
        .find(|version| CONTRACT_VERSIONS.contains(&version.as_str()))
    else {
        // `0.1.0 or @0.2.0`, for the messages.
        let versions = CONTRACT_VERSIONS.join(" or @");
        let expected = format!("{CONTRACT_PACKAGE}/{EXPORTED_INTERFACE}@{versions}");
        return Err(match found_versions.first() {
            Some(version) => format!(
                "it was built against {CONTRACT_PACKAGE}@{version}, but this host supports \
                 {CONTRACT_PACKAGE}@{versions} (expected the export {expected})"
            ),
            None if instance_exports.is_empty() => {
                format!("it exports no interface; expected {expected}")
            }
            None => format!(
                "it exports {}, not {expected}: it is a component for another world",
                instance_exports.join(", ")
            ),
        });
    };

    for (name, _) in ty.imports(engine) {
        if ALLOWED_WASI_PREFIXES
            .iter()
            .any(|prefix| name.starts_with(prefix))
        {
            continue;
        }
        let allowed_contract_import = IMPORTED_INTERFACES
            .iter()
            .any(|interface| contract_version(name, interface) == Some(version.as_str()));
        if allowed_contract_import {
            continue;
        }
        if let Some(other) = IMPORTED_INTERFACES
            .iter()
            .find_map(|interface| contract_version(name, interface))
        {
            return Err(format!(
                "it imports {name}, built against {CONTRACT_PACKAGE}@{other}, but it exports \
                 {CONTRACT_PACKAGE}/{EXPORTED_INTERFACE}@{version}: one component, one contract version"
            ));
        }
        return Err(format!(
            "it imports {name}, which is outside the contract (a transform may import only \
             {CONTRACT_PACKAGE}/log and wasi:cli, wasi:io, wasi:clocks, wasi:random, \
             wasi:filesystem, wasi:sockets, which the host provides empty; wasi:http and \
             anything else is refused)"
        ));
    }
    Ok(version.clone())
}

/// `Some(version)` when `name` is `bitcram:transform/<interface>@<version>`.
fn contract_version<'a>(name: &'a str, interface: &str) -> Option<&'a str> {
    name.strip_prefix(CONTRACT_PACKAGE)?
        .strip_prefix('/')?
        .strip_prefix(interface)?
        .strip_prefix('@')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_check_names_what_it_found() {
        assert!(
            check_format(b"hello world")
                .unwrap_err()
                .contains("not a WebAssembly file")
        );
        assert!(
            check_format(b"\0asm\x01\0\0\0")
                .unwrap_err()
                .contains("core WebAssembly module")
        );
        assert!(check_format(b"\0asm\x0d\0\x01\0").is_ok());
    }

    #[test]
    fn contract_version_parses_only_the_contract_package() {
        assert_eq!(
            contract_version("bitcram:transform/log@0.1.0", "log"),
            Some("0.1.0")
        );
        assert_eq!(
            contract_version("bitcram:transform/logger@0.1.0", "log"),
            None
        );
        assert_eq!(contract_version("other:transform/log@0.1.0", "log"), None);
    }
}
