//! `bitcram-sync snapshot --out DIR`.

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use crate::cli::BitcramArgs;
use crate::config;

/// Fetches, checks and stores the bodies of one run; prints each file.
pub(super) async fn run(bitcram: &BitcramArgs, out: &Path) -> anyhow::Result<ExitCode> {
    let live = config::live_input(bitcram)?;
    let manifest = crate::extract::write_snapshot(live, out).await?;
    let mut stdout = std::io::stdout().lock();
    for body in &manifest.bodies {
        writeln!(
            stdout,
            "{}/{}\t{} bytes\tsha256 {}",
            out.display(),
            body.file,
            body.bytes,
            body.sha256
        )?;
    }
    writeln!(stdout, "{}/manifest.json", out.display())?;
    Ok(ExitCode::SUCCESS)
}
