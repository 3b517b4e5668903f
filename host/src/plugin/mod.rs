//! The plugin runtime: one wasmtime engine per process, a gate that checks a
//! transform component before any I/O, and a fresh sandboxed store for each
//! transform.
//!
//! A component sees only the `bitcram:transform/log` import and a WASI context
//! with no files, no network, no environment and no stdin (language runtimes
//! link WASI's filesystem, sockets and cli interfaces even when a transform
//! uses none of them; each is there, empty or denying). Each store has a
//! memory cap and a time budget enforced with epoch interruption.

mod cache;
mod error;
mod file;
mod gate;
mod output;
mod state;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use wasmtime::component::{Linker, ResourceAny};
use wasmtime::{Config, Engine, Store};

pub use cache::{CacheOutcome, CompileCache};
use error::classify;
pub use error::{PluginError, TrapCause};
pub use file::{CACHE_ENTRY_MAX_BYTES, PLUGIN_FILE_MAX_BYTES};
pub use state::PluginLimits;

use state::StoreState;

mod bindings;
mod contract;

pub use contract::{DuplicateKey, GuestError, InputError, Summary, describe_guest_error};

use crate::model::{Row, RunContext, Source};
use bindings::{v0_1, v0_2};

/// The WIT package whose `transformer` interface a plugin must export.
pub const CONTRACT_PACKAGE: &str = "bitcram:transform";
/// The versions of [`CONTRACT_PACKAGE`] this host implements, oldest first:
/// `0.1.0` takes whole bodies, `0.2.0` takes items.
pub const CONTRACT_VERSIONS: &[&str] = &["0.1.0", "0.2.0"];

/// How a plugin takes its input: what its contract version says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feeding {
    /// `0.1.0`: each page whole, through [`TransformSession::push`].
    Pages,
    /// `0.2.0`: the items of each list, through
    /// [`TransformSession::push_items`] and [`TransformSession::end_source`].
    Items,
}

/// A checked component ready to instantiate, by contract version.
enum Pre {
    V0_1(v0_1::TransformPre<StoreState>),
    V0_2(v0_2::TransformPre<StoreState>),
}

/// An instance's exports, by contract version.
enum Guest {
    V0_1(v0_1::Transform),
    V0_2(v0_2::Transform),
}

/// Runs `$body` with `$g` bound to the instance's exports, whatever their
/// version: the calls are the same, their types are each version's own.
macro_rules! on_guest {
    ($guest:expr, $g:ident => $body:expr) => {
        match $guest {
            Guest::V0_1($g) => $body,
            Guest::V0_2($g) => $body,
        }
    };
}

/// The default transform component, built from `plugins/bitcram-transform`
/// by `host/build.rs` and embedded in the binary.
pub static DEFAULT_PLUGIN: &[u8] = include_bytes!(env!("BITCRAM_DEFAULT_PLUGIN_WASM"));

/// How often the epoch advances: the granularity of the time budget, and how
/// often a running plugin yields to the async runtime.
const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Where a component comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginSource {
    /// The default component embedded in this binary.
    Embedded,
    /// A `.wasm` file.
    Path(PathBuf),
}

impl fmt::Display for PluginSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PluginSource::Embedded => f.write_str("the embedded default plugin"),
            PluginSource::Path(path) => write!(f, "{}", path.display()),
        }
    }
}

/// Who a loaded plugin is: named in every log line, error and run report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PluginIdentity {
    /// The name the plugin reports.
    pub name: String,
    /// The version the plugin reports.
    pub version: String,
    /// The version of the WIT package the plugin was built against.
    pub package_version: String,
    /// Hex sha256 of the component file.
    pub sha256: String,
    /// Where it was loaded from: a path, or `embedded`.
    pub source: String,
}

impl fmt::Display for PluginIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} (sha256 {}, {})",
            self.name, self.version, self.sha256, self.source
        )
    }
}

/// The process's wasmtime engine, WASI linker and compile cache.
pub struct PluginHost {
    engine: Engine,
    linker: Linker<StoreState>,
    cache: Option<CompileCache>,
    limits: PluginLimits,
}

impl PluginHost {
    /// Creates the engine (with epoch interruption and a thread that advances
    /// the epoch) and the linker holding exactly the contract's imports.
    pub fn new(limits: PluginLimits, cache: Option<CompileCache>) -> anyhow::Result<Self> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        let engine = Engine::new(&config)
            .map_err(anyhow::Error::from)
            .context("creating the WebAssembly engine")?;
        start_epoch_ticker(&engine);

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(anyhow::Error::from)
            .context("linking the WASI interfaces")?;
        v0_1::Transform::add_to_linker::<StoreState, wasmtime::component::HasSelf<StoreState>>(
            &mut linker,
            |state| state,
        )
        .map_err(anyhow::Error::from)
        .context("linking the bitcram:transform@0.1.0 imports")?;
        v0_2::Transform::add_to_linker::<StoreState, wasmtime::component::HasSelf<StoreState>>(
            &mut linker,
            |state| state,
        )
        .map_err(anyhow::Error::from)
        .context("linking the bitcram:transform@0.2.0 imports")?;
        Ok(Self {
            engine,
            linker,
            cache,
            limits,
        })
    }

    /// The engine, for benchmarks and cache tools.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Loads a component and passes it through the gate: the sha256 pin, the
    /// file format, the exported contract version, the imports, the linker's
    /// type check, and the plugin's own `info`. Touches nothing but the file
    /// and the compile cache.
    pub async fn load(
        &self,
        source: &PluginSource,
        expected_sha256: Option<&str>,
    ) -> Result<Plugin, PluginError> {
        let refused = |reason: String| PluginError::Refused {
            plugin: source.to_string(),
            reason,
        };
        let bytes: std::borrow::Cow<'static, [u8]> = match source {
            PluginSource::Embedded => DEFAULT_PLUGIN.into(),
            PluginSource::Path(path) => file::read_regular(path, file::PLUGIN_FILE_MAX_BYTES, true)
                .map_err(|e| refused(e.to_string()))?
                .0
                .into(),
        };
        let sha256 = gate::sha256_hex(&bytes);
        if let Some(expected) = expected_sha256
            && !expected.trim().eq_ignore_ascii_case(&sha256)
        {
            return Err(refused(format!(
                "its sha256 is {sha256}, but --plugin-sha256 expects {}",
                expected.trim()
            )));
        }
        gate::check_format(&bytes).map_err(refused)?;
        // Compiling takes seconds and blocks its thread: it runs aside, so
        // that a SIGTERM meanwhile still stops the run at once.
        let (engine, cache, wasm, key) = (
            self.engine.clone(),
            self.cache.clone(),
            bytes,
            sha256.clone(),
        );
        let (component, cache_outcome) = tokio::task::spawn_blocking(move || match cache {
            Some(cache) => cache.load_or_compile(&engine, &wasm, &key),
            None => wasmtime::component::Component::new(&engine, &wasm[..])
                .map(|c| (c, CacheOutcome::Disabled)),
        })
        .await
        .map_err(|e| refused(format!("its compile stopped: {e}")))?
        .map_err(|e| refused(format!("it does not compile: {e:#}")))?;
        let package_version = gate::check_contract(&self.engine, &component).map_err(refused)?;
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| refused(format!("its imports do not match the contract: {e:#}")))?;
        let exports_differ =
            |e: wasmtime::Error| refused(format!("its exports do not match the contract: {e:#}"));
        let pre = match package_version.as_str() {
            "0.1.0" => Pre::V0_1(v0_1::TransformPre::new(instance_pre).map_err(exports_differ)?),
            _ => Pre::V0_2(v0_2::TransformPre::new(instance_pre).map_err(exports_differ)?),
        };

        let mut plugin = Plugin {
            identity: Arc::new(PluginIdentity {
                name: String::new(),
                version: String::new(),
                package_version,
                sha256,
                source: match source {
                    PluginSource::Embedded => "embedded".to_owned(),
                    PluginSource::Path(path) => path.display().to_string(),
                },
            }),
            pre,
            engine: self.engine.clone(),
            limits: self.limits,
            cache_outcome,
        };
        let (mut store, guest) = plugin.instantiate().await?;
        let info = on_guest!(&guest, g => g
            .bitcram_transform_transformer()
            .call_info(&mut store)
            .await
            .map(|info| (info.name, info.version)));
        // `info()` is part of the gate: a plugin that cannot say who it is
        // is refused (exit 3), with what went wrong.
        let info = match info {
            Ok(info) => info,
            Err(e) => {
                let failure = classify(&store, e, &plugin.identity.to_string());
                let why = match &failure {
                    PluginError::Trapped { cause, output, .. } => format!("{cause}{output}"),
                    other => other.to_string(),
                };
                return Err(refused(format!("its `info` failed: {why}")));
            }
        };
        let (name, version) = info;
        if name.trim().is_empty() {
            return Err(refused("its `info` returned an empty name".to_owned()));
        }
        let identity = Arc::make_mut(&mut plugin.identity);
        identity.name = name;
        identity.version = version;
        Ok(plugin)
    }
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until the engine is dropped.
fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("plugin-epoch".to_owned())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawning the plugin epoch thread");
}

/// A component that passed the gate, ready to run transforms.
pub struct Plugin {
    identity: Arc<PluginIdentity>,
    pre: Pre,
    engine: Engine,
    limits: PluginLimits,
    cache_outcome: CacheOutcome,
}

impl Plugin {
    /// Who the plugin is.
    pub fn identity(&self) -> &PluginIdentity {
        &self.identity
    }

    /// How it takes its input.
    pub fn feeding(&self) -> Feeding {
        match self.pre {
            Pre::V0_1(_) => Feeding::Pages,
            Pre::V0_2(_) => Feeding::Items,
        }
    }

    /// Whether its compiled code came from the cache.
    pub fn cache_outcome(&self) -> CacheOutcome {
        self.cache_outcome
    }

    async fn instantiate(&self) -> Result<(Store<StoreState>, Guest), PluginError> {
        let mut store = Store::new(
            &self.engine,
            StoreState::new(self.limits, Arc::clone(&self.identity)),
        );
        store.limiter(|state| &mut state.limiter);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|cx| Ok(cx.data().on_epoch()));
        store.data_mut().start_call();
        let result = match &self.pre {
            Pre::V0_1(pre) => pre.instantiate_async(&mut store).await.map(Guest::V0_1),
            Pre::V0_2(pre) => pre.instantiate_async(&mut store).await.map(Guest::V0_2),
        };
        store.data_mut().end_call();
        match result {
            Ok(guest) => Ok((store, guest)),
            Err(e) => Err(classify(&store, e, &self.identity.to_string())),
        }
    }

    /// Starts one transform in a fresh store with its own memory cap and time
    /// budget.
    pub async fn start(&self, context: &RunContext) -> Result<TransformSession, PluginError> {
        let (mut store, guest) = self.instantiate().await?;
        store.data_mut().start_call();
        let resource = on_guest!(&guest, g => g
            .bitcram_transform_transformer()
            .transform()
            .call_constructor(&mut store, &context.into())
            .await);
        store.data_mut().end_call();
        let resource = resource.map_err(|e| classify(&store, e, &self.identity.to_string()))?;
        Ok(TransformSession {
            store,
            guest,
            resource,
            plugin: self.identity.to_string(),
            failed: false,
        })
    }
}

/// One running transform. Any error ends it: a trapped instance cannot be
/// entered again.
pub struct TransformSession {
    store: Store<StoreState>,
    guest: Guest,
    resource: ResourceAny,
    plugin: String,
    failed: bool,
}

impl TransformSession {
    /// Hands one page to a plugin that takes pages ([`Feeding::Pages`]),
    /// which takes its own copy.
    pub async fn push(&mut self, source: Source, page: &[u8]) -> Result<(), PluginError> {
        self.check_usable()?;
        let Guest::V0_1(guest) = &self.guest else {
            return Err(self.misfed("push"));
        };
        self.store.data_mut().start_call();
        let result = guest
            .bitcram_transform_transformer()
            .transform()
            .call_push(&mut self.store, self.resource, source.into(), page)
            .await;
        self.settle(result.map(|r| r.map_err(GuestError::from)))
    }

    /// Hands the next items of `source` to a plugin that takes items
    /// ([`Feeding::Items`]).
    pub async fn push_items(
        &mut self,
        source: Source,
        items: Vec<String>,
    ) -> Result<(), PluginError> {
        self.check_usable()?;
        let Guest::V0_2(guest) = &self.guest else {
            return Err(self.misfed("push-items"));
        };
        self.store.data_mut().start_call();
        let result = guest
            .bitcram_transform_transformer()
            .transform()
            .call_push_items(&mut self.store, self.resource, source.into(), &items)
            .await;
        self.settle(result.map(|r| r.map_err(GuestError::from)))
    }

    /// Tells a plugin that takes items that `source` has no more.
    pub async fn end_source(&mut self, source: Source) -> Result<(), PluginError> {
        self.check_usable()?;
        let Guest::V0_2(guest) = &self.guest else {
            return Err(self.misfed("end-source"));
        };
        self.store.data_mut().start_call();
        let result = guest
            .bitcram_transform_transformer()
            .transform()
            .call_end_source(&mut self.store, self.resource, source.into())
            .await;
        self.settle(result.map(|r| r.map_err(GuestError::from)))
    }

    /// Says all input has been pushed.
    pub async fn finish(&mut self) -> Result<Summary, PluginError> {
        self.check_usable()?;
        self.store.data_mut().start_call();
        let result = on_guest!(&self.guest, g => g
            .bitcram_transform_transformer()
            .transform()
            .call_finish(&mut self.store, self.resource)
            .await
            .map(|r| r.map(Summary::from).map_err(GuestError::from)));
        self.settle(result)
    }

    /// Up to `max_rows` rows; after [`finish`](Self::finish), empty means done.
    pub async fn next_batch(&mut self, max_rows: u32) -> Result<Vec<Row>, PluginError> {
        self.check_usable()?;
        self.store.data_mut().start_call();
        let result = on_guest!(&self.guest, g => g
            .bitcram_transform_transformer()
            .transform()
            .call_next_batch(&mut self.store, self.resource, max_rows)
            .await
            .map(|r| r.map(|rows| rows.into_iter().map(Row::from).collect::<Vec<_>>()).map_err(GuestError::from)));
        self.settle(result)
    }

    /// A call the plugin's contract version does not have: the host's bug.
    fn misfed(&self, call: &str) -> PluginError {
        PluginError::Host(anyhow::anyhow!(
            "plugin {} has no `{call}` in its contract version",
            self.plugin
        ))
    }

    /// The largest the plugin's memory grew to, in bytes.
    pub fn peak_memory_bytes(&self) -> usize {
        self.store.data().limiter.peak_bytes()
    }

    /// Time spent inside the plugin so far.
    pub fn guest_time(&self) -> Duration {
        self.store.data().used()
    }

    fn check_usable(&self) -> Result<(), PluginError> {
        if self.failed {
            return Err(PluginError::Host(anyhow::anyhow!(
                "plugin {} was called again after it failed",
                self.plugin
            )));
        }
        Ok(())
    }

    fn settle<T>(
        &mut self,
        result: wasmtime::Result<Result<T, GuestError>>,
    ) -> Result<T, PluginError> {
        self.store.data_mut().end_call();
        let outcome = match result {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) => PluginError::Guest {
                plugin: self.plugin.clone(),
                error: Box::new(error),
                output: self.store.data().output.tail_suffix(),
            },
            Err(e) => classify(&self.store, e, &self.plugin),
        };
        self.failed = true;
        Err(outcome)
    }
}
