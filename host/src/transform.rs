//! Drives one transform: pushes the pages in contract order, pulls rows in
//! batches as soon as the plugin has them, checks every row, and hands the
//! batches to a sink (a file, a database transaction).

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};

use crate::bitcram::SplitError;
use crate::body::Body;
use crate::id_set::IdSet;
use crate::model::{Row, RunContext, Source};
use crate::plugin::{Feeding, Plugin, PluginError, Summary, TransformSession};

/// Rows asked of the plugin per `next-batch` call.
pub const BATCH_ROWS: u32 = 1000;
/// Items handed to a plugin that takes items per `push-items` call, at most;
/// fewer when they pass [`PUSH_BYTES`].
const PUSH_ITEMS: usize = 1000;
/// About the most bytes of items per `push-items` call.
const PUSH_BYTES: usize = 1 << 20;
/// The longest id the target table's `VARCHAR(64)` key holds.
pub const MAX_ID_CHARS: usize = 64;

/// Where rows go.
pub trait RowSink {
    /// Takes one batch of checked rows.
    fn accept(&mut self, rows: Vec<Row>) -> impl Future<Output = anyhow::Result<()>>;
}

/// What a finished transform reports.
#[derive(Debug, Clone, Copy)]
pub struct TransformReport {
    pub summary: Summary,
    /// Rows handed to the sink.
    pub rows: u64,
    /// Wall time of the whole transform, sink included.
    pub elapsed: Duration,
    /// Time spent inside the plugin.
    pub plugin_time: Duration,
    /// The plugin's peak linear memory, in bytes.
    pub plugin_peak_memory_bytes: usize,
}

/// Why a transform did not complete.
#[derive(Debug, thiserror::Error)]
pub enum TransformFailure {
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// A row the plugin produced breaks the table's rules.
    #[error("plugin {plugin} produced an invalid row: {reason}")]
    InvalidRow { plugin: String, reason: String },
    /// A body is not a complete list, found while splitting it into items.
    #[error(
        "the {} body, page {page}, {}is not a complete list: {reason}",
        .body.name(),
        .origin.as_deref().map(|origin| format!("from {origin}, ")).unwrap_or_default()
    )]
    MalformedBody {
        body: Source,
        page: u32,
        /// Where it came from, when it arrived in chunks.
        origin: Option<String>,
        reason: String,
    },
    /// Reading input or writing output failed.
    #[error(transparent)]
    Io(#[from] anyhow::Error),
}

/// Runs `plugin` over `pages` (in checkout, stock, price-list order; each
/// produced just before it is pushed, so a snapshot is read one file at a
/// time, and a page still being checked is waited for only when its turn
/// comes) and feeds the rows to `sink`.
pub async fn run_transform<S: RowSink>(
    plugin: &Plugin,
    context: &RunContext,
    pages: impl Stream<Item = anyhow::Result<(Source, impl Into<Body>)>>,
    sink: &mut S,
) -> Result<TransformReport, TransformFailure> {
    let started = Instant::now();
    let mut session = plugin.start(context).await?;
    let mut checking = Checking::new(RowChecker::new(plugin.identity().to_string()));
    let mut pages = std::pin::pin!(pages);
    // The page of the current source (pages come grouped by source, in
    // contract order), and, item by item, the sources ended so far.
    let mut last: Option<(Source, u32)> = None;
    let mut ended = 0;
    while let Some(next) = pages.next().await {
        let (source, body) = next?;
        let body: Body = body.into();
        let page = match last {
            Some((previous, page)) if previous == source => page + 1,
            _ => 0,
        };
        last = Some((source, page));
        match plugin.feeding() {
            Feeding::Pages => {
                let bytes = whole_list(source, page, body).await?;
                // The host's copy goes once the plugin has taken the page.
                session.push(source, &bytes).await?;
                drop(bytes);
                if source == Source::PriceList {
                    // Load while the rest of the input is still being transformed.
                    drain(&mut session, &mut checking, sink).await?;
                }
            }
            Feeding::Items => {
                while ended < Source::ALL.len() && Source::ALL[ended] < source {
                    session.end_source(Source::ALL[ended]).await?;
                    ended += 1;
                }
                // Loads between batches of price-list items.
                push_list(&mut session, source, page, body, &mut checking, sink).await?;
            }
        }
    }
    if plugin.feeding() == Feeding::Items {
        for source in &Source::ALL[ended..] {
            session.end_source(*source).await?;
        }
    }
    let summary = session.finish().await?;
    drain(&mut session, &mut checking, sink).await?;
    if let Some(rows) = checking.settle().await? {
        sink.accept(rows).await?;
    }
    let checker = checking.checker_mut();
    checker.finish()?;
    if checker.rows != summary.rows {
        return Err(TransformFailure::InvalidRow {
            plugin: plugin.identity().to_string(),
            reason: format!(
                "its summary announced {} rows but it returned {}",
                summary.rows, checker.rows
            ),
        });
    }
    Ok(TransformReport {
        summary,
        rows: checker.rows,
        elapsed: started.elapsed(),
        plugin_time: session.guest_time(),
        plugin_peak_memory_bytes: session.peak_memory_bytes(),
    })
}

/// A page gathered whole for a plugin that takes whole bodies, once its
/// envelope passed the check (when it is yet to be checked).
async fn whole_list(source: Source, page: u32, body: Body) -> Result<Bytes, TransformFailure> {
    let origin = body.origin().map(str::to_owned);
    let unchecked = body.unchecked();
    let bytes = body
        .whole()
        .await
        .map_err(|reason| TransformFailure::Io(anyhow::anyhow!(reason)))?;
    if !unchecked {
        return Ok(bytes);
    }
    let checked = bytes.clone();
    tokio::task::spawn_blocking(move || crate::bitcram::check_envelope(&checked))
        .await
        .map_err(|e| {
            TransformFailure::Io(anyhow::anyhow!(
                "checking the {} body failed: {e}",
                source.name()
            ))
        })?
        .map_err(|reason| TransformFailure::MalformedBody {
            body: source,
            page,
            origin,
            reason,
        })?;
    Ok(bytes)
}

/// Hands the items of one page to a plugin that takes items: the page is
/// split on a blocking thread (as its chunks arrive, for a page that
/// arrives in chunks) while the plugin takes the items already split (two
/// batches wait at most), and a price list's rows are loaded between
/// batches.
async fn push_list<S: RowSink>(
    session: &mut TransformSession,
    source: Source,
    page: u32,
    body: Body,
    checking: &mut Checking,
    sink: &mut S,
) -> Result<(), TransformFailure> {
    let origin = body.origin().map(str::to_owned);
    let (batches, mut received) = tokio::sync::mpsc::channel::<Vec<String>>(2);
    let split = tokio::task::spawn_blocking(move || {
        let send = |batch| {
            batches
                .blocking_send(batch)
                .map_err(|_| "the transform stopped".to_owned())
        };
        match body {
            Body::Whole(bytes) => crate::bitcram::split_list(&bytes, PUSH_ITEMS, PUSH_BYTES, send)
                .map_err(SplitError::Malformed),
            Body::Chunks(chunks) => {
                let mut reader = chunks.into_reader();
                let split = crate::bitcram::split_reader(&mut reader, PUSH_ITEMS, PUSH_BYTES, send);
                // The producer's own words say best why its body ended.
                match reader.failure() {
                    Some(reason) => Err(SplitError::Read(reason.to_owned())),
                    None => split,
                }
            }
        }
    });
    while let Some(items) = received.recv().await {
        // On an error the receiver goes, and the split stops at its next batch.
        session.push_items(source, items).await?;
        if source == Source::PriceList {
            drain(session, checking, sink).await?;
        }
    }
    match split.await {
        Ok(Ok(_items)) => Ok(()),
        Ok(Err(SplitError::Malformed(reason))) => Err(TransformFailure::MalformedBody {
            body: source,
            page,
            origin,
            reason,
        }),
        Ok(Err(SplitError::Read(reason))) => Err(TransformFailure::Io(anyhow::anyhow!(reason))),
        Err(e) => Err(TransformFailure::Io(anyhow::anyhow!(
            "splitting the {} body failed: {e}",
            source.name()
        ))),
    }
}

/// A batch on the checking thread: the checker comes back with the rows and
/// the verdict.
type CheckTask = tokio::task::JoinHandle<(RowChecker, Vec<Row>, Result<(), TransformFailure>)>;

/// The row checks of one batch run on a blocking thread while the plugin
/// makes the next batch: on two cores, neither waits for the other.
struct Checking {
    /// The checker, when no batch is being checked.
    idle: Option<RowChecker>,
    /// The batch being checked, with the checker.
    busy: Option<CheckTask>,
}

impl Checking {
    fn new(checker: RowChecker) -> Self {
        Self {
            idle: Some(checker),
            busy: None,
        }
    }

    fn checker(&self) -> &RowChecker {
        self.idle.as_ref().expect("no batch is being checked")
    }

    fn checker_mut(&mut self) -> &mut RowChecker {
        self.idle.as_mut().expect("no batch is being checked")
    }

    /// Starts checking `rows`; the previous batch must have been settled.
    fn start(&mut self, rows: Vec<Row>) {
        let mut checker = self.idle.take().expect("one batch is checked at a time");
        self.busy = Some(tokio::task::spawn_blocking(move || {
            let checked = rows.iter().try_for_each(|row| checker.check(row));
            (checker, rows, checked)
        }));
    }

    /// Waits for the batch being checked, if any, and returns its rows once
    /// they passed.
    async fn settle(&mut self) -> Result<Option<Vec<Row>>, TransformFailure> {
        let Some(handle) = self.busy.take() else {
            return Ok(None);
        };
        let (checker, rows, checked) = handle
            .await
            .map_err(|e| TransformFailure::Io(anyhow::anyhow!("checking rows failed: {e}")))?;
        self.idle = Some(checker);
        checked.map(|()| Some(rows))
    }
}

/// Takes the rows the plugin has ready, a batch at a time, each checked on
/// the checking thread while the plugin makes the next; a batch still being
/// checked when none is left is settled by the next drain, or at the end.
async fn drain<S: RowSink>(
    session: &mut TransformSession,
    checking: &mut Checking,
    sink: &mut S,
) -> Result<(), TransformFailure> {
    loop {
        let next = session.next_batch(BATCH_ROWS).await;
        if matches!(&next, Ok(rows) if rows.is_empty()) {
            // The batch being checked goes on while the plugin takes more
            // items; the next drain (or the end) settles it.
            return Ok(());
        }
        // The batch checked meanwhile goes first: its failure, if any, came first.
        if let Some(rows) = checking.settle().await? {
            sink.accept(rows).await?;
        }
        let rows = next?;
        if rows.len() > BATCH_ROWS as usize {
            return Err(checking.checker().invalid(format!(
                "next-batch returned {} rows when asked for at most {BATCH_ROWS}",
                rows.len()
            )));
        }
        checking.start(rows);
    }
}

/// The rules every row must meet, whatever plugin made it.
struct RowChecker {
    plugin: String,
    /// Every id so far. A repeated numeric id is found by
    /// [`finish`](Self::finish), after the last row and before anything
    /// commits; a repeated text id at once.
    seen: IdSet,
    rows: u64,
}

impl RowChecker {
    fn new(plugin: String) -> Self {
        Self {
            plugin,
            seen: IdSet::new(),
            rows: 0,
        }
    }

    fn invalid(&self, reason: String) -> TransformFailure {
        TransformFailure::InvalidRow {
            plugin: self.plugin.clone(),
            reason,
        }
    }

    fn repeated(&self, id: &str) -> TransformFailure {
        self.invalid(format!("product {id} occurs in two rows"))
    }

    fn check(&mut self, row: &Row) -> Result<(), TransformFailure> {
        check_row(row).map_err(|reason| self.invalid(reason))?;
        if !self.seen.add(&row.id) {
            return Err(self.repeated(&row.id));
        }
        self.rows += 1;
        Ok(())
    }

    /// The checks that need every row: no id in two rows.
    fn finish(&mut self) -> Result<(), TransformFailure> {
        match self.seen.repeated() {
            Some(id) => Err(self.repeated(&id)),
            None => Ok(()),
        }
    }
}

/// Checks one row on its own: an id of 1 to [`MAX_ID_CHARS`] characters and
/// a `data` that is a JSON object.
pub fn check_row(row: &Row) -> Result<(), String> {
    let chars = row.id.chars().count();
    if chars == 0 {
        return Err("a row has an empty id".to_owned());
    }
    if chars > MAX_ID_CHARS {
        return Err(format!(
            "product {:?} has an id of {chars} characters; the table holds at most {MAX_ID_CHARS}",
            row.id
        ));
    }
    if row.id.trim() != row.id || row.id.chars().any(char::is_control) {
        return Err(format!(
            "product {:?} has an id with blanks or control characters",
            row.id
        ));
    }
    match serde_json::from_str::<&serde_json::value::RawValue>(&row.data) {
        Ok(raw) if raw.get().trim_start().starts_with('{') => Ok(()),
        Ok(_) => Err(format!("product {}: data is not a JSON object", row.id)),
        Err(e) => Err(format!("product {}: data is not valid JSON: {e}", row.id)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str) -> Row {
        Row {
            id: id.to_owned(),
            data: "{}".to_owned(),
            stock: 0,
        }
    }

    #[test]
    fn an_id_of_exactly_the_columns_width_fits() {
        assert_eq!(check_row(&row(&"9".repeat(MAX_ID_CHARS))), Ok(()));
        // Characters, not bytes: 64 two-byte characters fit too.
        assert_eq!(check_row(&row(&"é".repeat(MAX_ID_CHARS))), Ok(()));
        let err = check_row(&row(&"9".repeat(MAX_ID_CHARS + 1))).unwrap_err();
        assert!(
            err.ends_with("has an id of 65 characters; the table holds at most 64"),
            "{err}"
        );
    }

    #[test]
    fn blanks_at_either_end_or_a_control_character_anywhere_are_refused() {
        for id in [" 1", "1 ", "\t1", "1\u{7}2", "1\n2"] {
            let err = check_row(&row(id)).unwrap_err();
            assert!(
                err.ends_with("has an id with blanks or control characters"),
                "{id:?}: {err}"
            );
        }
        // A blank inside is part of the id.
        assert_eq!(check_row(&row("1 2")), Ok(()));
    }
}
