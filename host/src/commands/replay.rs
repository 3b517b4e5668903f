//! A transform run over a snapshot's bodies, shared by `plugin run` and
//! `plugin test`.

use crate::model::format_synced_at;
use crate::plugin::Plugin;
use crate::snapshot::Snapshot;
use crate::transform::{RowSink, TransformReport, run_transform};

/// Runs the transform over a snapshot's bodies, read one file at a time.
pub(super) async fn transform_snapshot<S: RowSink>(
    plugin: &Plugin,
    snapshot: &Snapshot,
    sink: &mut S,
) -> anyhow::Result<TransformReport> {
    let context = snapshot
        .run_info()
        .run_context(format_synced_at(time::OffsetDateTime::now_utc()));
    let pages = crate::snapshot::pages(snapshot.clone());
    Ok(run_transform(plugin, &context, futures_util::stream::iter(pages), sink).await?)
}
