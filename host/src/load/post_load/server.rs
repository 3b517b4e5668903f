//! The checks and the watch that need the server: the bodies of the
//! procedures a statement calls, and the savepoint that marks the load's
//! transaction.

use std::collections::HashSet;

use anyhow::anyhow;
use sqlx::{Any, AssertSqlSafe, Transaction};

use super::lexer::Flavor;
use super::rules::{Context, ProcedureName, Refusal, check, check_text, refusal_message, shorten};
use crate::load::table::Dialect;
use crate::load::target::describe_db_error;

/// How deep `CALL`s inside procedures are followed before the check gives up.
const MAX_CALL_DEPTH: usize = 16;

/// Checks every statement before the load writes anything: first each text,
/// then, on MySQL and MariaDB, each procedure it calls, read from the server
/// (the calls inside those followed too). Errors name the statement.
pub(in crate::load) async fn check_statements(
    tx: &mut Transaction<'static, Any>,
    statements: &[String],
    dialect: Dialect,
) -> anyhow::Result<()> {
    let flavor = Flavor::from(dialect);
    let mut default_schema: Option<Option<String>> = None;
    for (k, statement) in statements.iter().enumerate() {
        let refused =
            |refusal: Refusal, via: &str| anyhow!(refusal_message(k, statement, via, &refusal));
        let calls = check_text(statement, flavor).map_err(|r| refused(r, ""))?;
        if calls.is_empty() {
            continue;
        }
        if default_schema.is_none() {
            let schema: Option<String> = sqlx::query_scalar("SELECT CAST(DATABASE() AS CHAR)")
                .fetch_one(&mut **tx)
                .await
                .map_err(|e| {
                    anyhow!("asking for the current database: {}", describe_db_error(&e))
                })?;
            default_schema = Some(schema);
        }
        let schema = default_schema.clone().flatten();
        let mut seen = HashSet::new();
        let mut pending: Vec<(ProcedureName, Option<String>, Vec<String>)> = calls
            .into_iter()
            .map(|c| (c, schema.clone(), Vec::new()))
            .collect();
        while let Some((call, schema, chain)) = pending.pop() {
            let Some(schema) = call.schema.clone().or(schema) else {
                anyhow::bail!(
                    "post-load statement {} (`{}`) calls {} without a schema, and the connection \
                     has no database: write it as schema.{}",
                    k + 1,
                    shorten(statement),
                    call.name,
                    call.name
                );
            };
            let full = format!("{schema}.{}", call.name);
            if !seen.insert(full.to_ascii_lowercase()) {
                continue;
            }
            if chain.len() >= MAX_CALL_DEPTH {
                anyhow::bail!(
                    "post-load statement {} (`{}`) is refused: its procedures call each other more \
                     than {MAX_CALL_DEPTH} deep ({}), too deep to check",
                    k + 1,
                    shorten(statement),
                    chain.join(" → ")
                );
            }
            let body = read_procedure_body(tx, &schema, &call.name)
                .await
                .map_err(|e| {
                    anyhow!(
                        "post-load statement {} (`{}`): {e:#}",
                        k + 1,
                        shorten(statement)
                    )
                })?;
            let mut chain = chain;
            chain.push(full.clone());
            let via = format!("procedure {} runs ", chain.join(" → calls "));
            let inner =
                check(&body, flavor, Context::ProcedureBody).map_err(|r| refused(r, &via))?;
            // Inside a procedure, unqualified names are in its own schema.
            pending.extend(
                inner
                    .into_iter()
                    .map(|c| (c, Some(schema.clone()), chain.clone())),
            );
        }
    }
    Ok(())
}

/// The body of `schema.name`, as the server keeps it.
async fn read_procedure_body(
    tx: &mut Transaction<'static, Any>,
    schema: &str,
    name: &str,
) -> anyhow::Result<String> {
    let row: Option<(Option<String>,)> = sqlx::query_as(
        "SELECT CAST(ROUTINE_DEFINITION AS CHAR) FROM information_schema.ROUTINES \
         WHERE ROUTINE_TYPE = 'PROCEDURE' AND ROUTINE_SCHEMA = ? AND ROUTINE_NAME = ?",
    )
    .bind(schema.to_owned())
    .bind(name.to_owned())
    .fetch_optional(&mut **tx)
    .await
    .map_err(|e| {
        anyhow!(
            "reading procedure {schema}.{name}: {}",
            describe_db_error(&e)
        )
    })?;
    match row {
        None => Err(anyhow!("procedure {schema}.{name} does not exist")),
        Some((None,)) => Err(anyhow!(
            "the body of procedure {schema}.{name} cannot be read by this database user, so it \
             cannot be checked: make the user its definer, or grant it SHOW_ROUTINE (MySQL 8) or \
             SELECT on mysql.proc (MariaDB)"
        )),
        Some((Some(body),)) => Ok(body),
    }
}

/// The savepoint that marks the load's transaction while the post-load
/// statements run.
pub(in crate::load) struct TransactionMark {
    name: String,
}

/// What the server did with the load's transaction when a statement ended it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::load) enum Ended {
    Committed,
    RolledBack,
    Unknown,
}

impl TransactionMark {
    /// Sets the mark in the open transaction, before any post-load
    /// statement: a `ROLLBACK TO` a savepoint of their own, set later, does
    /// not remove it.
    pub(in crate::load) async fn set(tx: &mut Transaction<'static, Any>) -> anyhow::Result<Self> {
        let mark = Self {
            name: random_savepoint_name(),
        };
        sqlx::raw_sql(AssertSqlSafe(format!("SAVEPOINT {}", mark.name)))
            .execute(&mut **tx)
            .await
            .map_err(|e| anyhow!("marking the load's transaction: {}", describe_db_error(&e)))?;
        Ok(mark)
    }

    /// Whether a transaction is still open, after one post-load statement:
    /// a fresh savepoint, set and released at once. With no transaction the
    /// server sets none (without an error), so the release fails. The mark
    /// itself stays where it is.
    pub(in crate::load) async fn transaction_open(
        &self,
        tx: &mut Transaction<'static, Any>,
    ) -> anyhow::Result<bool> {
        let probe = random_savepoint_name();
        release(tx, &format!("SAVEPOINT {probe}; RELEASE SAVEPOINT {probe}")).await
    }

    /// Whether the transaction is still the one the mark was set in (after
    /// the last post-load statement, before `COMMIT`).
    pub(in crate::load) async fn still_ours(
        &self,
        tx: &mut Transaction<'static, Any>,
    ) -> anyhow::Result<bool> {
        release(tx, &format!("RELEASE SAVEPOINT {}", self.name)).await
    }
}

fn random_savepoint_name() -> String {
    let mut random = [0u8; 8];
    getrandom_bytes(&mut random);
    format!("bitcram_sync_{}", hex::encode(random))
}

/// Runs `sql`, which releases a savepoint: false when the savepoint is gone.
async fn release(tx: &mut Transaction<'static, Any>, sql: &str) -> anyhow::Result<bool> {
    match sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
        .execute(&mut **tx)
        .await
    {
        Ok(_) => Ok(true),
        // The savepoint is gone: its transaction ended.
        Err(sqlx::Error::Database(_)) => Ok(false),
        Err(e) => Err(anyhow!(
            "checking the load's transaction: {}",
            describe_db_error(&e)
        )),
    }
}

/// Random bytes for the mark's name: the standard library seeds each
/// `RandomState` from the OS (no extra crate for eight bytes).
fn getrandom_bytes(out: &mut [u8; 8]) {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    *out = hasher.finish().to_le_bytes();
}

/// After a statement ended the transaction (the session is in autocommit
/// now): whether the rows the run wrote, stamped with its sync time, are
/// still there for everyone to see.
pub(in crate::load) async fn how_it_ended(
    tx: &mut Transaction<'static, Any>,
    quoted_table: &str,
    synced_at: &str,
    rows_written: u64,
) -> Ended {
    if rows_written == 0 {
        return Ended::Unknown;
    }
    let sql = format!("SELECT COUNT(*) FROM {quoted_table} WHERE updated_at = ?");
    match sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql))
        .bind(synced_at.to_owned())
        .fetch_one(&mut **tx)
        .await
    {
        Ok(0) => Ended::RolledBack,
        Ok(_) => Ended::Committed,
        Err(_) => Ended::Unknown,
    }
}

impl Ended {
    /// Plain words for the run's error.
    pub(in crate::load) fn describe(self, table: &str) -> String {
        match self {
            Ended::Committed => format!(
                "the server committed what the run had written, so the new rows of {table} are \
                 in place but the post-load statements did not complete"
            ),
            Ended::RolledBack => {
                format!("the server rolled it back, so nothing the run wrote to {table} was kept")
            }
            Ended::Unknown => format!(
                "the server committed or rolled back what the run had written to {table}; the job \
                 cannot tell which"
            ),
        }
    }
}
