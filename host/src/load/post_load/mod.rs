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

mod lexer;
mod rules;
mod server;
#[cfg(test)]
mod tests;

pub use lexer::Flavor;
pub use rules::{Refusal, check_text, refusal_message, split_statements};
pub(in crate::load) use server::{TransactionMark, check_statements, how_it_ended};
