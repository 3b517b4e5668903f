//! Why a plugin failed, and how a failed call is sorted into those cases.

use std::fmt;
use std::time::Duration;

use wasmtime::{Store, Trap};

use super::contract::{GuestError, describe_guest_error};
use super::state::StoreState;

/// Why a plugin failed; whose fault it is decides the variant.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The component was refused by the gate: nothing ran.
    #[error("plugin {plugin} refused: {reason}")]
    Refused { plugin: String, reason: String },
    /// The plugin returned an error: the input is bad, or the plugin thinks so.
    /// `output` ends the message: the plugin's last lines of stdout and
    /// stderr, or nothing.
    #[error("plugin {plugin} returned an error: {}{output}", describe_guest_error(.error))]
    Guest {
        plugin: String,
        error: Box<GuestError>,
        output: String,
    },
    /// The sandbox stopped the plugin.
    #[error("plugin {plugin} was stopped: {cause}{output}")]
    Trapped {
        plugin: String,
        cause: TrapCause,
        output: String,
    },
    /// Something failed on the host's side.
    #[error(transparent)]
    Host(#[from] anyhow::Error),
}

/// How the sandbox stopped a plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrapCause {
    /// The plugin used up its time budget.
    Deadline(Duration),
    /// The plugin tried to grow its memory past the cap.
    Memory { limit_bytes: usize },
    /// Any other trap: a panic, an `unreachable`, an out-of-bounds access.
    Trap(String),
}

impl fmt::Display for TrapCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrapCause::Deadline(budget) if budget.as_millis() < 1000 => write!(
                f,
                "it ran past its time limit of {} ms (--plugin-timeout)",
                budget.as_millis()
            ),
            TrapCause::Deadline(budget) => write!(
                f,
                "it ran past its time limit of {:.1} s (--plugin-timeout)",
                budget.as_secs_f64()
            ),
            TrapCause::Memory { limit_bytes } => write!(
                f,
                "it tried to use more than its memory limit of {} MiB (--plugin-memory-mb)",
                limit_bytes / (1024 * 1024)
            ),
            TrapCause::Trap(what) => write!(f, "it crashed: {what}"),
        }
    }
}

/// Sorts a failed call into memory cap, deadline, other trap, or host error.
pub(super) fn classify(
    store: &Store<StoreState>,
    error: wasmtime::Error,
    plugin: &str,
) -> PluginError {
    let state = store.data();
    let plugin = plugin.to_owned();
    let output = state.output.tail_suffix();
    if let Some(limit_bytes) = state.limiter.denied_limit() {
        return PluginError::Trapped {
            plugin,
            cause: TrapCause::Memory { limit_bytes },
            output,
        };
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => PluginError::Trapped {
            plugin,
            cause: TrapCause::Deadline(state.budget()),
            output,
        },
        Some(trap) => {
            let mut what = trap.to_string();
            if let Some(trace) = error.downcast_ref::<wasmtime::WasmBacktrace>() {
                let frames: Vec<&str> = trace
                    .frames()
                    .iter()
                    .filter_map(|frame| frame.func_name())
                    .take(4)
                    .collect();
                if !frames.is_empty() {
                    what += &format!(" (in {})", frames.join(" <- "));
                }
            }
            PluginError::Trapped {
                plugin,
                cause: TrapCause::Trap(what),
                output,
            }
        }
        None => PluginError::Host(
            anyhow::Error::from(error).context(format!("calling plugin {plugin}")),
        ),
    }
}
