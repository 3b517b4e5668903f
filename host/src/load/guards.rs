//! The shrink guard, checked after the last row and before `COMMIT`.

use anyhow::bail;

use super::options::{LoadReport, LoadSettings};

/// An empty catalog, or the removal of more than `max_delete_percent` of the
/// current rows, is refused unless `allow_shrink`.
pub(super) fn check_shrink(settings: &LoadSettings, report: &LoadReport) -> anyhow::Result<()> {
    if settings.allow_shrink {
        return Ok(());
    }
    let before = report.rows_before;
    let remaining = before - report.deleted;
    let table = &settings.table;
    if report.rows_new == 0 {
        bail!(
            "shrink guard: the new catalog is empty; table {table} has {before} rows and would have none \
             (use --allow-shrink to load it anyway)"
        );
    }
    if before > 0 {
        let percent = report.deleted as f64 * 100.0 / before as f64;
        if percent > settings.max_delete_percent {
            bail!(
                "shrink guard: the new catalog would remove {} of the {before} rows in {table} ({percent:.1}%, \
                 more than --max-delete-percent {}); {remaining} would remain, {} with the new products \
                 (use --allow-shrink to load it anyway)",
                report.deleted,
                settings.max_delete_percent,
                report.rows_new,
            );
        }
    }
    Ok(())
}
