//! The post-load statements: split, checked so that none of them can end the
//! load's transaction, and watched while they run.
//!
//! A statement that commits (explicitly, or implicitly as DDL does in MySQL
//! and MariaDB) would make everything the run wrote before it permanent, so
//! a failure after it could no longer be rolled back: the very failure this
//! job exists to prevent. Two layers keep that from happening:
//!
//! 1. Before anything is written, every statement is read as the server will
//!    read it (quotes, comments, executable comments) and refused if it ends
//!    or commits a transaction, by MySQL 8's and MariaDB's documented lists
//!    of statements that cause an implicit commit. A `CALL` is followed into
//!    the procedure's body, read from the server, and into the procedures
//!    that body calls. Stored functions and triggers need no check: neither
//!    server lets them commit or roll back.
//! 2. While they run, a savepoint with a name no statement can guess marks
//!    the load's transaction. After each statement the job releases and sets
//!    it again; a savepoint does not survive the end of its transaction, so
//!    if a statement ended it anyway (a procedure redefined after the check,
//!    say) the job stops there and says whether the server committed or
//!    rolled back what the run had written.

use std::collections::HashSet;

use anyhow::anyhow;
use sqlx::{Any, AssertSqlSafe, Transaction};

use super::describe_db_error;
use super::table::Dialect;

/// How deep `CALL`s inside procedures are followed before the check gives up.
const MAX_CALL_DEPTH: usize = 16;

/// How the statements are written: the two servers' SQL, or SQLite's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// MySQL and MariaDB: `#` comments, executable `/*! */` comments,
    /// backslash escapes in strings (unless `NO_BACKSLASH_ESCAPES`).
    MySql,
    /// SQLite: no procedures; `BEGIN`, `COMMIT`, `END` and `ROLLBACK` end or
    /// start transactions.
    Sqlite,
}

impl From<Dialect> for Flavor {
    fn from(dialect: Dialect) -> Self {
        match dialect {
            Dialect::MySql | Dialect::MariaDb => Flavor::MySql,
            Dialect::Sqlite => Flavor::Sqlite,
        }
    }
}

/// A procedure a statement calls, as written (`schema` absent when the
/// name is not qualified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcedureName {
    pub schema: Option<String>,
    pub name: String,
}

/// Splits `POST_LOAD_SQL` into statements at each `;` that is not inside a
/// string, a quoted name or a comment; empty statements are dropped.
pub fn split_statements(text: &str) -> Vec<String> {
    let lexer = Lexer::new(text, Flavor::MySql, true);
    let mut statements = Vec::new();
    let mut start = 0;
    for token in lexer {
        if token.kind == Kind::Punct(';') {
            statements.push(text[start..token.start].trim().to_owned());
            start = token.start + 1;
        }
    }
    statements.push(text[start..].trim().to_owned());
    statements.retain(|s| !s.is_empty());
    statements
}

/// Why one statement may not run inside the load's transaction, with the
/// part of the text that says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The offending statement, shortened.
    pub statement: String,
    pub reason: String,
}

/// Checks the text of one post-load statement (it may hold several, as a
/// repeated `--post-load-sql` value can) without a server. Returns the
/// procedures it calls, which only the server can check.
pub fn check_text(sql: &str, flavor: Flavor) -> Result<Vec<ProcedureName>, Refusal> {
    check(sql, flavor, Context::TopLevel)
}

/// Where the text comes from: a statement the job sends, or the body of a
/// stored procedure (where `BEGIN` opens a block, not a transaction).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    TopLevel,
    ProcedureBody,
}

fn check(sql: &str, flavor: Flavor, context: Context) -> Result<Vec<ProcedureName>, Refusal> {
    // How a server reads a backslash in a string depends on its sql_mode
    // (NO_BACKSLASH_ESCAPES), which the job does not control: read the text
    // both ways and refuse what either reading refuses.
    let readings: &[bool] = match flavor {
        Flavor::MySql => &[true, false],
        Flavor::Sqlite => &[false],
    };
    let mut calls = Vec::new();
    for &backslash_escapes in readings {
        let tokens: Vec<Token> = Lexer::new(sql, flavor, backslash_escapes).collect();
        for statement in tokens.split(|t| t.kind == Kind::Punct(';')) {
            if statement.is_empty() {
                continue;
            }
            let words = Words {
                sql,
                tokens: statement,
            };
            let reason = match flavor {
                Flavor::MySql => mysql_refusal(&words, context),
                Flavor::Sqlite => sqlite_refusal(&words),
            };
            if let Some((at, reason)) = reason {
                return Err(Refusal {
                    statement: shorten(words.text_from(at)),
                    reason,
                });
            }
            if flavor == Flavor::MySql {
                for call in words.calls() {
                    if !calls.contains(&call) {
                        calls.push(call);
                    }
                }
            }
        }
    }
    Ok(calls)
}

/// The tokens of one statement, with the text they come from.
struct Words<'a> {
    sql: &'a str,
    tokens: &'a [Token],
}

impl Words<'_> {
    /// The keyword (upper case) at `i`, if the token there is a bare word.
    fn word(&self, i: usize) -> Option<String> {
        let token = self.tokens.get(i)?;
        (token.kind == Kind::Word).then(|| self.sql[token.start..token.end].to_ascii_uppercase())
    }

    fn is(&self, i: usize, keyword: &str) -> bool {
        self.word(i).as_deref() == Some(keyword)
    }

    fn is_any(&self, i: usize, keywords: &[&str]) -> bool {
        self.word(i).is_some_and(|w| keywords.contains(&w.as_str()))
    }

    /// The text from the token at `i` to the end of the statement.
    fn text_from(&self, i: usize) -> &str {
        match (self.tokens.get(i), self.tokens.last()) {
            (Some(first), Some(last)) => &self.sql[first.start..last.end],
            _ => "",
        }
    }

    /// The procedures named after each `CALL`.
    fn calls(&self) -> Vec<ProcedureName> {
        let mut calls = Vec::new();
        for i in 0..self.tokens.len() {
            if !self.is(i, "CALL") {
                continue;
            }
            let Some(first) = self.name(i + 1) else {
                continue;
            };
            let call = if self.tokens.get(i + 2).map(|t| &t.kind) == Some(&Kind::Punct('.')) {
                match self.name(i + 3) {
                    Some(second) => ProcedureName {
                        schema: Some(first),
                        name: second,
                    },
                    None => continue,
                }
            } else {
                ProcedureName {
                    schema: None,
                    name: first,
                }
            };
            calls.push(call);
        }
        calls
    }

    /// A name at `i`: a bare word or a quoted name, unquoted.
    fn name(&self, i: usize) -> Option<String> {
        let token = self.tokens.get(i)?;
        let text = &self.sql[token.start..token.end];
        match token.kind {
            Kind::Word => Some(text.to_owned()),
            Kind::Quoted(quote) if text.len() >= 2 => {
                let inner = &text[1..text.len() - 1];
                let doubled = format!("{quote}{quote}");
                Some(inner.replace(&doubled, &quote.to_string()))
            }
            _ => None,
        }
    }
}

/// Why a MySQL or MariaDB statement would end the transaction, if it would,
/// and the token where that starts. Every position is looked at, not only
/// the first word, so that a statement nested in a procedure's `IF`, loop or
/// handler is seen too.
fn mysql_refusal(words: &Words, context: Context) -> Option<(usize, String)> {
    const DDL: &str = "is DDL, which commits the transaction on its own";
    const ADMIN: &str = "is an administrative statement, which commits the transaction on its own";
    const ACCOUNTS: &str = "manages accounts, which commits the transaction on its own";
    const REPLICATION: &str = "controls replication, which commits the transaction on its own";
    for i in 0..words.tokens.len() {
        let Some(word) = words.word(i) else {
            continue;
        };
        let next = |n: usize| words.word(i + n).unwrap_or_default();
        let why: Option<String> = match word.as_str() {
            "COMMIT" => Some("COMMIT ends the load's transaction".into()),
            "ROLLBACK" => {
                // `ROLLBACK [WORK] TO [SAVEPOINT] name` keeps the transaction.
                let to = if next(1) == "WORK" { 2 } else { 1 };
                (next(to) != "TO").then(|| "ROLLBACK ends the load's transaction".into())
            }
            "BEGIN"
                if context == Context::TopLevel
                    && i == 0
                    && !(next(1) == "NOT" && next(2) == "ATOMIC") =>
            {
                Some("BEGIN commits the load's transaction and starts another".into())
            }
            "START" if next(1) == "TRANSACTION" => {
                Some("START TRANSACTION commits the load's transaction and starts another".into())
            }
            "XA" => Some("XA statements end the load's transaction".into()),
            "SET" if (i + 1..words.tokens.len()).any(|j| words.is(j, "AUTOCOMMIT")) => {
                Some("setting autocommit commits the load's transaction".into())
            }
            "SET" if next(1) == "PASSWORD" || (next(1) == "DEFAULT" && next(2) == "ROLE") => {
                Some(format!("SET {} {ACCOUNTS}", next(1)))
            }
            "LOCK" | "UNLOCK" if words.is_any(i + 1, &["TABLE", "TABLES"]) => {
                Some(format!("{word} TABLES commits the transaction on its own"))
            }
            // TRUNCATE(x, d) is the numeric function.
            "TRUNCATE" if words.tokens.get(i + 1).map(|t| &t.kind) != Some(&Kind::Punct('(')) => {
                Some(
                    "TRUNCATE commits the transaction on its own (DELETE FROM empties a table \
                     inside it)"
                        .into(),
                )
            }
            "CREATE" | "DROP" => {
                // Temporary tables are the exception in both servers.
                let mut n = 1;
                if next(1) == "OR" && next(2) == "REPLACE" {
                    n = 3;
                }
                (next(n) != "TEMPORARY").then(|| format!("{word} {DDL}"))
            }
            "ALTER" | "RENAME" => Some(format!("{word} {DDL}")),
            "GRANT" | "REVOKE" => Some(format!("{word} {ACCOUNTS}")),
            "ANALYZE" | "CHECK"
                if words.is_any(i + 1, &["TABLE", "TABLES", "NO_WRITE_TO_BINLOG", "LOCAL"]) =>
            {
                Some(format!("{word} TABLE {ADMIN}"))
            }
            "OPTIMIZE" | "REPAIR" | "FLUSH" | "RESET" | "SHUTDOWN" | "RESTART" | "BACKUP"
            | "CLONE" => Some(format!("{word} {ADMIN}")),
            "CACHE" | "LOAD" if next(1) == "INDEX" => Some(format!("{word} INDEX {ADMIN}")),
            "IMPORT" if next(1) == "TABLE" => Some(format!("IMPORT TABLE {DDL}")),
            "INSTALL" | "UNINSTALL" => Some(format!("{word} {ADMIN}")),
            "CHANGE" if matches!(next(1).as_str(), "MASTER" | "REPLICATION") => {
                Some(format!("CHANGE {} {REPLICATION}", next(1)))
            }
            "START" | "STOP"
                if matches!(
                    next(1).as_str(),
                    "SLAVE" | "REPLICA" | "GROUP_REPLICATION" | "ALL"
                ) =>
            {
                Some(format!("{word} {} {REPLICATION}", next(1)))
            }
            "PREPARE" | "EXECUTE" => Some(format!(
                "{word} runs SQL that is only known when it runs, so it cannot be checked"
            )),
            _ => None,
        };
        if let Some(why) = why {
            return Some((i, why));
        }
    }
    None
}

/// Why a SQLite statement would end the transaction, if it would.
fn sqlite_refusal(words: &Words) -> Option<(usize, String)> {
    let why = match words.word(0)?.as_str() {
        "BEGIN" => Some("BEGIN cannot run inside the load's transaction".into()),
        "COMMIT" | "END" => Some("COMMIT ends the load's transaction".into()),
        "ROLLBACK" => {
            let to = if words.is(1, "TRANSACTION") { 2 } else { 1 };
            (!words.is(to, "TO")).then(|| "ROLLBACK ends the load's transaction".into())
        }
        _ => None,
    };
    why.map(|why| (0, why))
}

/// The one line that says why post-load statement `k` (from 0) is refused;
/// `via` names the procedures that lead to the offending statement.
pub fn refusal_message(k: usize, statement: &str, via: &str, refusal: &Refusal) -> String {
    format!(
        "post-load statement {} (`{}`) is refused: {via}`{}`: {}; a statement that ends the load's \
         transaction would leave the new rows committed whatever happens after it",
        k + 1,
        shorten(statement),
        refusal.statement,
        refusal.reason,
    )
}

fn shorten(text: &str) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(100) {
        Some((cut, _)) => format!("{}…", &flat[..cut]),
        None => flat,
    }
}

/// Checks every statement before the load writes anything: first each text,
/// then, on MySQL and MariaDB, each procedure it calls, read from the server
/// (the calls inside those followed too). Errors name the statement.
pub(super) async fn check_statements(
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
pub(super) struct TransactionMark {
    name: String,
}

/// What the server did with the load's transaction when a statement ended it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ended {
    Committed,
    RolledBack,
    Unknown,
}

impl TransactionMark {
    /// Sets the mark in the open transaction.
    pub(super) async fn set(tx: &mut Transaction<'static, Any>) -> anyhow::Result<Self> {
        let mut random = [0u8; 8];
        getrandom_bytes(&mut random);
        let mark = Self {
            name: format!("bitcram_sync_{}", hex::encode(random)),
        };
        sqlx::raw_sql(AssertSqlSafe(format!("SAVEPOINT {}", mark.name)))
            .execute(&mut **tx)
            .await
            .map_err(|e| anyhow!("marking the load's transaction: {}", describe_db_error(&e)))?;
        Ok(mark)
    }

    /// Whether the transaction is still the one the mark was set in; sets
    /// the mark again for the next statement.
    pub(super) async fn still_open(
        &self,
        tx: &mut Transaction<'static, Any>,
    ) -> anyhow::Result<bool> {
        let sql = format!("RELEASE SAVEPOINT {0}; SAVEPOINT {0}", self.name);
        match sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut **tx).await {
            Ok(_) => Ok(true),
            // The savepoint is gone: its transaction ended.
            Err(sqlx::Error::Database(_)) => Ok(false),
            Err(e) => Err(anyhow!(
                "checking the load's transaction: {}",
                describe_db_error(&e)
            )),
        }
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
pub(super) async fn how_it_ended(
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
    pub(super) fn describe(self, table: &str) -> String {
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

/// One token: where it is in the text, and what kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Token {
    kind: Kind,
    start: usize,
    end: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A keyword or an unquoted name.
    Word,
    /// A name in backticks (or, for SQLite, double quotes or brackets).
    Quoted(char),
    /// A string literal.
    Text,
    Punct(char),
}

/// Reads SQL text as the server does, passing over comments and whitespace.
/// MySQL's executable comments (`/*! ... */`, `/*!80000 ... */`, MariaDB's
/// `/*M! ... */`) are read as code, since the server runs them.
struct Lexer<'a> {
    sql: &'a str,
    bytes: &'a [u8],
    at: usize,
    flavor: Flavor,
    backslash_escapes: bool,
    /// Inside an executable comment, whose `*/` is only its end.
    in_executable_comment: bool,
}

impl<'a> Lexer<'a> {
    fn new(sql: &'a str, flavor: Flavor, backslash_escapes: bool) -> Self {
        Self {
            sql,
            bytes: sql.as_bytes(),
            at: 0,
            flavor,
            backslash_escapes,
            in_executable_comment: false,
        }
    }

    fn peek(&self, ahead: usize) -> Option<u8> {
        self.bytes.get(self.at + ahead).copied()
    }

    /// Skips whitespace and comments; false at the end of the text.
    fn skip_space(&mut self) -> bool {
        loop {
            let Some(b) = self.peek(0) else {
                return false;
            };
            match b {
                b if b.is_ascii_whitespace() => self.at += 1,
                b'#' if self.flavor == Flavor::MySql => self.skip_line(),
                b'-' if self.peek(1) == Some(b'-') => {
                    // MySQL wants a space or control character after `--`.
                    let after = self.peek(2);
                    let comment = self.flavor == Flavor::Sqlite
                        || after.is_none_or(|c| c.is_ascii_whitespace() || c.is_ascii_control());
                    if !comment {
                        return true;
                    }
                    self.skip_line();
                }
                b'/' if self.peek(1) == Some(b'*') => {
                    let executable = self.flavor == Flavor::MySql
                        && (self.peek(2) == Some(b'!')
                            || (self.peek(2) == Some(b'M') && self.peek(3) == Some(b'!')));
                    if executable {
                        self.at += if self.peek(2) == Some(b'!') { 3 } else { 4 };
                        while self.peek(0).is_some_and(|c| c.is_ascii_digit()) {
                            self.at += 1;
                        }
                        self.in_executable_comment = true;
                    } else {
                        match self.sql[self.at + 2..].find("*/") {
                            Some(end) => self.at += 2 + end + 2,
                            None => self.at = self.bytes.len(),
                        }
                    }
                }
                b'*' if self.in_executable_comment && self.peek(1) == Some(b'/') => {
                    self.in_executable_comment = false;
                    self.at += 2;
                }
                _ => return true,
            }
        }
    }

    fn skip_line(&mut self) {
        match self.sql[self.at..].find('\n') {
            Some(end) => self.at += end + 1,
            None => self.at = self.bytes.len(),
        }
    }

    /// Passes a quoted run opened by `quote` at `self.at`; a doubled quote
    /// stands for itself, and so does an escaped one where escapes apply.
    fn skip_quoted(&mut self, quote: u8, escapes: bool) {
        self.at += 1;
        while let Some(b) = self.peek(0) {
            self.at += 1;
            if escapes && b == b'\\' {
                self.at += 1;
            } else if b == quote {
                if self.peek(0) == Some(quote) {
                    self.at += 1;
                } else {
                    return;
                }
            }
        }
        self.at = self.at.min(self.bytes.len());
    }
}

impl Iterator for Lexer<'_> {
    type Item = Token;

    fn next(&mut self) -> Option<Token> {
        if !self.skip_space() {
            return None;
        }
        let start = self.at;
        let b = self.bytes[start];
        let kind = match b {
            b'\'' => {
                self.skip_quoted(b'\'', self.backslash_escapes);
                Kind::Text
            }
            b'"' => {
                self.skip_quoted(b'"', self.backslash_escapes);
                match self.flavor {
                    // A string, or a name under ANSI_QUOTES: either way no code.
                    Flavor::MySql => Kind::Text,
                    Flavor::Sqlite => Kind::Quoted('"'),
                }
            }
            b'`' => {
                self.skip_quoted(b'`', false);
                Kind::Quoted('`')
            }
            b'[' if self.flavor == Flavor::Sqlite => {
                match self.sql[start..].find(']') {
                    Some(end) => self.at = start + end + 1,
                    None => self.at = self.bytes.len(),
                }
                Kind::Quoted(']')
            }
            b if is_word_byte(b) => {
                while self.peek(0).is_some_and(is_word_byte) {
                    self.at += 1;
                }
                Kind::Word
            }
            _ => {
                // One character, whole (it may be more than one byte).
                let c = self.sql[start..].chars().next().expect("not at the end");
                self.at += c.len_utf8();
                Kind::Punct(c)
            }
        };
        Some(Token {
            kind,
            start,
            end: self.at,
        })
    }
}

/// Bytes of an unquoted name: letters, digits, `_`, `$`, and any non-ASCII
/// character (both servers allow those).
fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(sql: &str) -> String {
        match check_text(sql, Flavor::MySql) {
            Err(r) => r.reason,
            Ok(calls) => panic!("{sql:?} was accepted (calls {calls:?})"),
        }
    }

    fn accepted(sql: &str) -> Vec<ProcedureName> {
        check_text(sql, Flavor::MySql).unwrap_or_else(|r| panic!("{sql:?} refused: {r:?}"))
    }

    fn body(sql: &str) -> Result<Vec<ProcedureName>, Refusal> {
        check(sql, Flavor::MySql, Context::ProcedureBody)
    }

    #[test]
    fn statements_that_end_the_transaction_are_refused() {
        for (sql, says) in [
            ("TRUNCATE app_import.mirror_item", "TRUNCATE commits"),
            ("truncate table t", "TRUNCATE commits"),
            ("CREATE TABLE t (id INT)", "CREATE is DDL"),
            ("CREATE INDEX i ON t (id)", "CREATE is DDL"),
            ("CREATE OR REPLACE TABLE t (id INT)", "CREATE is DDL"),
            ("ALTER TABLE t ADD COLUMN c INT", "ALTER is DDL"),
            ("DROP TABLE t", "DROP is DDL"),
            ("RENAME TABLE a TO b", "RENAME is DDL"),
            ("COMMIT", "COMMIT ends"),
            ("commit work", "COMMIT ends"),
            ("ROLLBACK", "ROLLBACK ends"),
            ("ROLLBACK WORK AND CHAIN", "ROLLBACK ends"),
            ("START TRANSACTION", "START TRANSACTION commits"),
            ("BEGIN", "BEGIN commits"),
            ("BEGIN WORK", "BEGIN commits"),
            ("LOCK TABLES t READ", "LOCK TABLES commits"),
            ("UNLOCK TABLES", "UNLOCK TABLES commits"),
            ("SET autocommit = 1", "autocommit"),
            ("SET @@session.autocommit = 1", "autocommit"),
            ("SET PASSWORD = 'x'", "manages accounts"),
            ("GRANT SELECT ON *.* TO u", "manages accounts"),
            ("ANALYZE TABLE t", "administrative"),
            ("OPTIMIZE TABLE t", "administrative"),
            ("FLUSH TABLES", "administrative"),
            ("LOAD INDEX INTO CACHE t", "administrative"),
            ("XA START 'x'", "XA statements"),
            ("START SLAVE", "replication"),
            ("CHANGE MASTER TO MASTER_HOST = 'h'", "replication"),
            ("PREPARE s FROM 'TRUNCATE t'", "cannot be checked"),
            ("EXECUTE IMMEDIATE 'TRUNCATE t'", "cannot be checked"),
        ] {
            let reason = refused(sql);
            assert!(reason.contains(says), "{sql:?}: {reason}");
        }
    }

    #[test]
    fn every_statement_of_a_text_is_checked() {
        assert!(refused("DELETE FROM m; TRUNCATE m").contains("TRUNCATE"));
        assert!(refused("CALL a(); COMMIT").contains("COMMIT"));
    }

    #[test]
    fn what_keeps_the_transaction_is_accepted() {
        accepted("DELETE FROM mirror");
        accepted("INSERT INTO m SELECT id, TRUNCATE(price, 2) FROM t");
        accepted("UPDATE t SET note = 'COMMIT; TRUNCATE t' WHERE id = 1");
        accepted("SELECT `commit`, \"truncate\" FROM t -- COMMIT\n");
        accepted("SELECT 1 # DROP TABLE t");
        accepted("SELECT /* ROLLBACK */ 1");
        accepted("CREATE TEMPORARY TABLE tmp AS SELECT id FROM t");
        accepted("DROP TEMPORARY TABLE IF EXISTS tmp");
        accepted("SAVEPOINT s");
        accepted("ROLLBACK TO SAVEPOINT s");
        accepted("ROLLBACK WORK TO s");
        accepted("SELECT * FROM t LOCK IN SHARE MODE");
        accepted("SELECT GET_LOCK('x', 0)");
        accepted("SET @x = 1");
    }

    #[test]
    fn executable_comments_are_read_as_code() {
        assert!(refused("SELECT 1 /*! ; TRUNCATE t */").contains("TRUNCATE"));
        assert!(refused("/*!80000 COMMIT */").contains("COMMIT"));
        assert!(refused("/*M! DROP TABLE t */").contains("DROP"));
    }

    #[test]
    fn a_string_is_read_both_ways_a_backslash_can_be_read() {
        // With backslash escapes this is one string; without them (the
        // NO_BACKSLASH_ESCAPES sql_mode) the TRUNCATE runs.
        assert!(refused(r"SELECT 'a\'; TRUNCATE t; -- '").contains("TRUNCATE"));
    }

    #[test]
    fn calls_are_collected_with_their_schema() {
        assert_eq!(
            accepted("CALL app_import.update_mirror_raw_item_data(); CALL `my proc`(1)"),
            vec![
                ProcedureName {
                    schema: Some("app_import".into()),
                    name: "update_mirror_raw_item_data".into()
                },
                ProcedureName {
                    schema: None,
                    name: "my proc".into()
                },
            ]
        );
        assert_eq!(
            accepted("call `a``b`.c"),
            vec![ProcedureName {
                schema: Some("a`b".into()),
                name: "c".into()
            }]
        );
    }

    #[test]
    fn procedure_bodies_are_checked_where_begin_opens_a_block() {
        let calls = body(
            "BEGIN\n  DECLARE CONTINUE HANDLER FOR NOT FOUND SET done = 1;\n  \
             outer_block: BEGIN\n    DELETE FROM mirror;\n    CALL inner_proc();\n  END;\nEND",
        )
        .unwrap();
        assert_eq!(
            calls,
            vec![ProcedureName {
                schema: None,
                name: "inner_proc".into()
            }]
        );
        for (sql, says) in [
            ("BEGIN TRUNCATE mirror; END", "TRUNCATE"),
            (
                "BEGIN DECLARE EXIT HANDLER FOR SQLEXCEPTION BEGIN ROLLBACK; RESIGNAL; END; DELETE FROM m; END",
                "ROLLBACK",
            ),
            ("BEGIN IF x THEN COMMIT; END IF; END", "COMMIT"),
            (
                "BEGIN WHILE i < 3 DO CREATE TABLE t (i INT); END WHILE; END",
                "CREATE",
            ),
            (
                "BEGIN IF a THEN SET autocommit = 1; END IF; END",
                "autocommit",
            ),
        ] {
            let reason = body(sql).unwrap_err().reason;
            assert!(reason.contains(says), "{sql:?}: {reason}");
        }
    }

    #[test]
    fn sqlite_refuses_what_ends_its_transaction() {
        for sql in ["BEGIN", "COMMIT", "END TRANSACTION", "ROLLBACK"] {
            assert!(check_text(sql, Flavor::Sqlite).is_err(), "{sql}");
        }
        for sql in [
            "UPDATE t SET x = CASE WHEN y THEN 1 ELSE 2 END",
            "ROLLBACK TO s",
            "CREATE TABLE IF NOT EXISTS log (x)",
        ] {
            assert!(check_text(sql, Flavor::Sqlite).is_ok(), "{sql}");
        }
    }

    #[test]
    fn post_load_sql_splits_only_outside_quotes_and_comments() {
        assert_eq!(
            split_statements("CALL a(); SELECT 'x;y'; -- c;d\nCALL `b;c`();;"),
            vec!["CALL a()", "SELECT 'x;y'", "-- c;d\nCALL `b;c`()"]
        );
        assert!(split_statements(" ; ").is_empty());
    }
}
