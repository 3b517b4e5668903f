//! What one store holds: the empty WASI context, the resource limiter, the
//! time budget, and the host side of the `log` import.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::PluginIdentity;
use super::bindings::v0_1::bitcram::transform::{log, types};
use super::bindings::v0_2::bitcram::transform as v0_2;
use super::output::{GuestOutput, Stream};

/// Longest log message kept from a plugin; the rest is cut.
const LOG_MESSAGE_MAX_BYTES: usize = 4096;
/// Log messages kept from one store; later ones are counted, not written.
const LOG_MESSAGES_MAX: u32 = 10_000;

/// The sandbox's bounds for one transform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PluginLimits {
    /// Total time the plugin may spend running, over all calls of one
    /// transform (time the host spends between calls does not count).
    pub timeout: Duration,
    /// The most linear memory the plugin may have, in bytes.
    pub memory_bytes: usize,
}

impl Default for PluginLimits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            memory_bytes: 512 * 1024 * 1024,
        }
    }
}

pub(super) struct StoreState {
    wasi: WasiCtx,
    table: ResourceTable,
    /// The guest's stdout and stderr, for the log and for error messages.
    pub(super) output: GuestOutput,
    pub(super) limiter: Limiter,
    plugin: Arc<PluginIdentity>,
    budget: Duration,
    used: Duration,
    call_started: Option<Instant>,
    deadline: Instant,
    log_messages: u32,
}

impl StoreState {
    pub(super) fn new(limits: PluginLimits, plugin: Arc<PluginIdentity>) -> Self {
        // No preopens, no environment, no arguments, stdin closed, sockets
        // and name lookup off (the defaults; set explicitly so that a change
        // of defaults cannot open them); stdout and stderr to the log. At the
        // gate the plugin has not said its name yet: its file stands in.
        let tag = if plugin.name.is_empty() {
            &plugin.source
        } else {
            &plugin.name
        };
        let output = GuestOutput::new(tag);
        let wasi = WasiCtxBuilder::new()
            .stdout(output.stream(Stream::Stdout))
            .stderr(output.stream(Stream::Stderr))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }))
            .build();
        Self {
            wasi,
            table: ResourceTable::new(),
            output,
            limiter: Limiter::new(limits.memory_bytes),
            plugin,
            budget: limits.timeout,
            used: Duration::ZERO,
            call_started: None,
            deadline: Instant::now() + limits.timeout,
            log_messages: 0,
        }
    }

    /// Starts the clock for one call into the plugin.
    pub(super) fn start_call(&mut self) {
        let now = Instant::now();
        self.call_started = Some(now);
        self.deadline = now + self.budget.saturating_sub(self.used);
    }

    /// Stops the clock: the time between calls is the host's, not the plugin's.
    pub(super) fn end_call(&mut self) {
        if let Some(started) = self.call_started.take() {
            self.used += started.elapsed();
        }
    }

    pub(super) fn used(&self) -> Duration {
        self.used
    }

    pub(super) fn budget(&self) -> Duration {
        self.budget
    }

    /// Called at every epoch tick while the plugin runs: yield to the async
    /// runtime, or stop the plugin once its budget is spent.
    pub(super) fn on_epoch(&self) -> UpdateDeadline {
        if Instant::now() >= self.deadline {
            UpdateDeadline::Interrupt
        } else {
            UpdateDeadline::Yield(1)
        }
    }
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for StoreState {}

impl log::Host for StoreState {
    async fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        self.log_messages += 1;
        if self.log_messages > LOG_MESSAGES_MAX {
            if self.log_messages == LOG_MESSAGES_MAX + 1 {
                tracing::warn!(
                    plugin = %self.plugin.name,
                    "plugin logged more than {LOG_MESSAGES_MAX} messages; dropping the rest"
                );
            }
            return Ok(());
        }
        let mut message = message;
        if message.len() > LOG_MESSAGE_MAX_BYTES {
            let mut end = LOG_MESSAGE_MAX_BYTES;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push_str(" [cut]");
        }
        let plugin = self.plugin.name.as_str();
        match level {
            log::Level::Trace => tracing::trace!(plugin, "{message}"),
            log::Level::Debug => tracing::debug!(plugin, "{message}"),
            log::Level::Info => tracing::info!(plugin, "{message}"),
            log::Level::Warn => tracing::warn!(plugin, "{message}"),
            log::Level::Error => tracing::error!(plugin, "{message}"),
        }
        Ok(())
    }
}

impl v0_2::types::Host for StoreState {}

impl v0_2::log::Host for StoreState {
    async fn log(&mut self, level: v0_2::log::Level, message: String) -> wasmtime::Result<()> {
        use v0_2::log::Level as L;
        let level = match level {
            L::Trace => log::Level::Trace,
            L::Debug => log::Level::Debug,
            L::Info => log::Level::Info,
            L::Warn => log::Level::Warn,
            L::Error => log::Level::Error,
        };
        log::Host::log(self, level, message).await
    }
}

/// wasmtime's [`StoreLimits`], recording the peak memory and whether a grow
/// was refused (a refused grow is not a `Trap`, so it must be remembered).
pub(super) struct Limiter {
    inner: StoreLimits,
    limit_bytes: usize,
    peak_bytes: usize,
    denied: bool,
}

impl Limiter {
    fn new(limit_bytes: usize) -> Self {
        Self {
            inner: StoreLimitsBuilder::new()
                .memory_size(limit_bytes)
                .trap_on_grow_failure(true)
                .build(),
            limit_bytes,
            peak_bytes: 0,
            denied: false,
        }
    }

    pub(super) fn peak_bytes(&self) -> usize {
        self.peak_bytes
    }

    /// The cap, if the plugin hit it.
    pub(super) fn denied_limit(&self) -> Option<usize> {
        self.denied.then_some(self.limit_bytes)
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.inner.memory_growing(current, desired, maximum);
        match allowed {
            Ok(true) => self.peak_bytes = self.peak_bytes.max(desired),
            _ => self.denied = true,
        }
        allowed
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.inner.memory_grow_failed(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.inner.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}
