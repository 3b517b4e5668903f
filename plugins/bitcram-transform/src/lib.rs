//! The default bitcram-sync transform component.
//!
//! The logic lives in [`merge`] as plain Rust with native unit tests; the
//! component glue (built only for `wasm32`) adapts it to the
//! `bitcram:transform@0.2.0` WIT world (items, one JSON text each).

mod data;
mod merge;
mod stock;

pub use merge::{InputError, Row, Source, Summary, Transform, TransformError};

/// The plugin's name, as reported to the host.
pub const NAME: &str = env!("CARGO_PKG_NAME");
/// The plugin's version, as reported to the host.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[cfg(target_arch = "wasm32")]
mod component;

#[cfg(test)]
mod tests;
