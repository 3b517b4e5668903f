//! SQL text read as MySQL, MariaDB and SQLite read it: words, quoted
//! names, strings and punctuation, with comments and whitespace passed over.

use crate::load::table::Dialect;

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

/// One token: where it is in the text, and what kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Token {
    pub(super) kind: Kind,
    pub(super) start: usize,
    pub(super) end: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
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
pub(super) struct Lexer<'a> {
    sql: &'a str,
    bytes: &'a [u8],
    at: usize,
    flavor: Flavor,
    backslash_escapes: bool,
    executable_comments: bool,
    /// Inside an executable comment, whose `*/` is only its end.
    in_executable_comment: bool,
}

impl<'a> Lexer<'a> {
    /// `executable_comments` says whether `/*! */` and `/*M! */` are read
    /// as code (as MySQL runs `/*!`, and MariaDB both) or as comments (as a
    /// server skips a version comment newer than itself, and MySQL `/*M!`).
    pub(super) fn new(
        sql: &'a str,
        flavor: Flavor,
        backslash_escapes: bool,
        executable_comments: bool,
    ) -> Self {
        Self {
            sql,
            bytes: sql.as_bytes(),
            at: 0,
            flavor,
            backslash_escapes,
            executable_comments,
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
                        && self.executable_comments
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
