//! The statements that end a transaction, recognised in SQL text: MySQL 8's
//! and MariaDB's lists of statements that cause an implicit commit, and
//! SQLite's transaction statements.

use super::lexer::{Flavor, Kind, Lexer, Token};

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
    let lexer = Lexer::new(text, Flavor::MySql, true, true);
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
pub(super) enum Context {
    TopLevel,
    ProcedureBody,
}

pub(super) fn check(
    sql: &str,
    flavor: Flavor,
    context: Context,
) -> Result<Vec<ProcedureName>, Refusal> {
    // How a server reads a backslash in a string depends on its sql_mode
    // (NO_BACKSLASH_ESCAPES), and whether it runs an executable comment on
    // its version and kind, neither of which the job controls: read the
    // text every way and refuse what any reading refuses.
    let readings: &[(bool, bool)] = match flavor {
        Flavor::MySql => &[(true, true), (false, true), (true, false), (false, false)],
        Flavor::Sqlite => &[(false, false)],
    };
    let mut calls = Vec::new();
    for &(backslash_escapes, executable_comments) in readings {
        let tokens: Vec<Token> =
            Lexer::new(sql, flavor, backslash_escapes, executable_comments).collect();
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
                    let call = call.map_err(|at| Refusal {
                        statement: shorten(words.text_from(at)),
                        reason: "the procedure it calls cannot be told from the text, so its body \
                                 cannot be checked (write the name plainly, or in backticks)"
                            .to_owned(),
                    })?;
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

    /// The procedures named after each `CALL`; `Err` with the position of
    /// a `CALL` whose name cannot be read.
    fn calls(&self) -> Vec<Result<ProcedureName, usize>> {
        let mut calls = Vec::new();
        for i in 0..self.tokens.len() {
            if !self.is(i, "CALL") {
                continue;
            }
            let Some(first) = self.name(i + 1) else {
                calls.push(Err(i));
                continue;
            };
            let call = if self.tokens.get(i + 2).map(|t| &t.kind) == Some(&Kind::Punct('.')) {
                match self.name(i + 3) {
                    Some(second) => ProcedureName {
                        schema: Some(first),
                        name: second,
                    },
                    None => {
                        calls.push(Err(i));
                        continue;
                    }
                }
            } else {
                ProcedureName {
                    schema: None,
                    name: first,
                }
            };
            calls.push(Ok(call));
        }
        calls
    }

    /// A name at `i`: a bare word or a quoted name (in backticks, or in
    /// double quotes as ANSI_QUOTES writes it), unquoted.
    fn name(&self, i: usize) -> Option<String> {
        let token = self.tokens.get(i)?;
        let text = &self.sql[token.start..token.end];
        match token.kind {
            Kind::Word => Some(text.to_owned()),
            Kind::Text if text.len() >= 2 && text.starts_with('"') && text.ends_with('"') => {
                Some(text[1..text.len() - 1].replace("\"\"", "\""))
            }
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
            // Unqualified names (the procedures checked, the job's own
            // tables) would then mean another schema's.
            "USE" if context == Context::TopLevel && i == 0 => Some(
                "USE changes the database the run's unqualified names refer to; qualify names instead"
                    .into(),
            ),
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

pub(super) fn shorten(text: &str) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(100) {
        Some((cut, _)) => format!("{}…", &flat[..cut]),
        None => flat,
    }
}
