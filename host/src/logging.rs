//! Logging to stderr with `tracing`; `RUST_LOG` filters.
//!
//! On a terminal (and by default) the output is for humans. With
//! `LOG_FORMAT=json`, or when running as a Cloud Run Job (`CLOUD_RUN_JOB` is
//! set), each event is one JSON line that Cloud Logging understands:
//! `severity`, `message`, `time`, the event's and its spans' fields, and the
//! run id (also as the `run_id` label).

use std::fmt;
use std::sync::OnceLock;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// What is logged when `RUST_LOG` is unset: this job at `info`, the
/// dependencies' chatter turned down.
const DEFAULT_FILTER: &str = "info,wasmtime=warn,wasmtime_wasi=warn,cranelift_codegen=warn,sqlx=warn,hyper=warn,hyper_util=warn,reqwest=warn,rustls=warn,h2=warn,google_cloud_auth=warn,google_cloud_gax_internal=warn";

/// How log lines look (`crate::config::log_format` picks it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// For people; coloured only on a terminal.
    Human,
    /// One JSON object per line, for Cloud Logging.
    Json,
}

static RUN_ID: OnceLock<String> = OnceLock::new();

/// The run id set by [`set_run_id`] (empty before).
pub fn run_id() -> String {
    RUN_ID.get().cloned().unwrap_or_default()
}

/// Sets the run id that every JSON line carries from now on.
pub fn set_run_id(run_id: &str) {
    let _ = RUN_ID.set(run_id.to_owned());
}

/// Installs the global subscriber. Safe to call more than once.
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    // Colour codes only where someone reads them: a redirected log stays plain.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder
            .fmt_fields(JsonFields::new())
            .event_format(CloudLogging)
            .try_init(),
    };
}

/// Reports the error that ended the command: one line, the whole chain of
/// causes, outermost first. In JSON mode it is also a log entry of severity
/// ERROR, so that Cloud Logging shows why the task failed.
pub fn report_fatal(error: &anyhow::Error, format: LogFormat) {
    if format == LogFormat::Json {
        tracing::error!("{error:#}");
    } else {
        eprintln!("error: {error:#}");
    }
}

/// One JSON object per event, in Cloud Logging's structured-log shape.
struct CloudLogging;

impl<S, N> FormatEvent<S, N> for CloudLogging
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut entry = Map::new();
        entry.insert(
            "severity".into(),
            severity(*event.metadata().level()).into(),
        );
        let now = time::OffsetDateTime::now_utc();
        entry.insert("time".into(), crate::model::format_synced_at(now).into());

        // Span fields first (outermost to innermost), so the event's own
        // fields win on a clash.
        if let Some(scope) = ctx.event_scope() {
            let mut spans = Vec::new();
            for span in scope.from_root() {
                spans.push(Value::from(span.name()));
                if let Some(fields) = span.extensions().get::<FormattedFields<N>>()
                    && let Ok(Value::Object(map)) = serde_json::from_str::<Value>(fields)
                {
                    entry.extend(map);
                }
            }
            if !spans.is_empty() {
                entry.insert("spans".into(), Value::Array(spans));
            }
        }
        let mut visitor = JsonVisitor(Map::new());
        event.record(&mut visitor);
        let message = visitor
            .0
            .remove("message")
            .unwrap_or(Value::String(String::new()));
        entry.extend(visitor.0);
        entry.insert("message".into(), message);
        entry.insert("target".into(), event.metadata().target().into());
        if let Some(run_id) = RUN_ID.get() {
            entry.insert("run_id".into(), run_id.clone().into());
            entry.insert(
                "logging.googleapis.com/labels".into(),
                serde_json::json!({ "run_id": run_id }),
            );
        }
        let line = serde_json::to_string(&entry).map_err(|_| fmt::Error)?;
        writeln!(writer, "{line}")
    }
}

/// Cloud Logging's severity names.
fn severity(level: Level) -> &'static str {
    match level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARNING",
        Level::INFO => "INFO",
        Level::DEBUG | Level::TRACE => "DEBUG",
    }
}

/// Collects an event's fields as JSON values.
struct JsonVisitor(Map<String, Value>);

impl Visit for JsonVisitor {
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
}
