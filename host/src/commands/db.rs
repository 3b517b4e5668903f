//! `bitcram-sync db init`.

use std::process::ExitCode;

use crate::cli::DatabaseArgs;
use crate::config::{self, SqliteFile};

/// Creates the target table and the state table if missing, or prints
/// their statements.
pub(super) async fn init(database: &DatabaseArgs, print: bool) -> anyhow::Result<ExitCode> {
    let table = config::table_name(database)?;
    if print {
        let target = config::database_target(database, SqliteFile::Create).ok();
        let dialect = config::print_dialect(target.as_ref());
        println!("{};", crate::load::create_table_sql(&table, dialect));
        println!();
        println!("{};", crate::load::create_state_table_sql(&table, dialect));
        return Ok(ExitCode::SUCCESS);
    }
    let target = config::database_target(database, SqliteFile::Create)?;
    let pool = target.connect().await?;
    let created = crate::load::create_tables(&pool, &table).await?;
    pool.close().await;
    let verb = |created: bool| if created { "created" } else { "already exists" };
    println!(
        "table {table} {} in {}",
        verb(created.table),
        target.description()
    );
    println!(
        "table {} {} (the record of the last run, for diff mode)",
        crate::load::state_table(&table),
        verb(created.state_table)
    );
    Ok(ExitCode::SUCCESS)
}
