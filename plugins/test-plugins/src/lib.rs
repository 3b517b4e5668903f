//! Transform components that misbehave on purpose, for the host's sandbox
//! tests. Each build enables exactly one feature:
//!
//! - `spin`: `push` loops forever (the time budget must stop it);
//! - `hog`: `push` allocates without bound (the memory cap must stop it);
//! - `panic`: `push` panics (reported as a crash, with the plugin named);
//! - `sneaky`: `push` reads `/etc/passwd`, so the component imports
//!   `wasi:filesystem` (the gate must refuse it before it runs);
//! - `future`: built against `bitcram:transform@0.2.0` (refused at the gate);
//! - `rogue`: runs, but emits the rows its price-list page spells out, one
//!   per line as `id<TAB>data`, unchecked (the host must refuse bad rows).
//!
//! Natively the crate is empty: it only exists as components.

#![cfg(target_arch = "wasm32")]

#[cfg(not(any(feature = "future", feature = "rogue")))]
mod current {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "transform",
    });

    use bitcram::transform::types::{Row, RunContext, Source, Summary, TransformError};
    use exports::bitcram::transform::transformer::{Guest, GuestTransform, PluginInfo};

    struct Plugin;

    impl Guest for Plugin {
        type Transform = Misbehaving;

        fn info() -> PluginInfo {
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

#[cfg(feature = "sneaky")]
const VARIANT: &str = "sneaky";
#[cfg(feature = "sneaky")]
fn misbehave(_page: &[u8]) {
    let _ = std::hint::black_box(std::fs::read("/etc/passwd"));
}

#[cfg(feature = "rogue")]
mod rogue {
    use std::cell::RefCell;

    wit_bindgen::generate!({
        path: "../../wit",
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

    struct Rogue(RefCell<Vec<Row>>);

    impl GuestTransform for Rogue {
        fn new(_context: RunContext) -> Self {
            Rogue(RefCell::new(Vec::new()))
        }

        fn push(&self, source: Source, page: Vec<u8>) -> Result<(), TransformError> {
            if source == Source::PriceList {
                let text = String::from_utf8_lossy(&page);
                for line in text.lines().filter(|l| !l.is_empty()) {
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
            let rows = self.0.borrow().len() as u64;
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
            package bitcram:transform@0.2.0;

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
