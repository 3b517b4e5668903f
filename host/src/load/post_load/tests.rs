//! The static checks of post-load statements, without a server.

use super::lexer::Flavor;
use super::rules::{
    Context, ProcedureName, Refusal, check, check_text, refusal_message, split_statements,
};

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
        ("SET DEFAULT ROLE r TO u", "SET DEFAULT manages accounts"),
        ("GRANT SELECT ON *.* TO u", "manages accounts"),
        ("ANALYZE TABLE t", "administrative"),
        ("OPTIMIZE TABLE t", "administrative"),
        ("FLUSH TABLES", "administrative"),
        ("LOAD INDEX INTO CACHE t", "administrative"),
        (
            "INSTALL PLUGIN p SONAME 'p.so'",
            "INSTALL is an administrative",
        ),
        ("UNINSTALL PLUGIN p", "UNINSTALL is an administrative"),
        ("IMPORT TABLE FROM '/tmp/t.sdi'", "IMPORT TABLE is DDL"),
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
    accepted("CREATE OR REPLACE TEMPORARY TABLE tmp AS SELECT id FROM t");
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

#[test]
fn an_exemption_inside_an_executable_comment_does_not_count() {
    // MySQL 8 skips a version comment newer than itself: DROP TABLE runs.
    assert!(refused("DROP /*!99999 TEMPORARY */ TABLE t").contains("DROP is DDL"));
    // MySQL reads /*M! as a plain comment: the whole transaction rolls back.
    assert!(refused("ROLLBACK /*M! TO SAVEPOINT s */").contains("ROLLBACK ends"));
}

#[test]
fn a_call_must_name_its_procedure_readably() {
    assert_eq!(
        accepted(r#"CALL "audit"."log_run"()"#),
        vec![ProcedureName {
            schema: Some("audit".into()),
            name: "log_run".into()
        }]
    );
    for sql in ["CALL @p", "CALL app.@p()"] {
        assert!(
            refused(sql).contains("cannot be told from the text"),
            "{sql}"
        );
    }
}

#[test]
fn use_is_refused() {
    assert!(refused("USE other_db").contains("USE changes the database"));
    // A column named `use` elsewhere is no USE statement, nor is an index hint.
    accepted("SELECT `use` FROM t");
    accepted("SELECT id FROM t USE INDEX (PRIMARY) WHERE id > 0");
}

#[test]
fn a_refusal_quotes_its_statement_from_the_word_that_is_refused() {
    let refusal = check_text(
        "UPDATE t SET a = 1; truncate  table app_import.mirror_item",
        Flavor::MySql,
    )
    .unwrap_err();
    // From the refused word to the statement's end, its spaces folded.
    assert_eq!(refusal.statement, "truncate table app_import.mirror_item");
    let refusal = check_text("SELECT 1; CALL 'p'(2)", Flavor::MySql).unwrap_err();
    assert_eq!(refusal.statement, "CALL 'p'(2)");
}

#[test]
fn a_called_procedure_is_named_plainly_in_backticks_or_in_double_quotes_only() {
    let names = accepted(r#"CALL `app_import`.`update_mirror`(); CALL "app"."we""ird"()"#);
    assert_eq!(
        names,
        [
            ProcedureName {
                schema: Some("app_import".into()),
                name: "update_mirror".into()
            },
            ProcedureName {
                schema: Some("app".into()),
                name: "we\"ird".into()
            },
        ]
    );
    // A single-quoted string, or a quote left open, names no procedure.
    for sql in ["CALL 'p'()", "CALL \"p", "CALL `", "CALL app.'p'()"] {
        let reason = refused(sql);
        assert!(
            reason.contains("cannot be told from the text"),
            "{sql:?}: {reason}"
        );
    }
}

#[test]
fn words_that_only_look_like_a_refused_statement_are_accepted() {
    for sql in [
        // MariaDB's anonymous block, not a transaction.
        "BEGIN NOT ATOMIC UPDATE t SET a = 1; END",
        // MariaDB's ANALYZE of a query runs it and reports; it commits nothing.
        "ANALYZE SELECT id FROM t",
        // LOAD DATA stays inside the transaction; only LOAD INDEX commits.
        "LOAD DATA LOCAL INFILE 'rows.csv' INTO TABLE t",
        // IMPORT and STOP are not reserved: columns may be named so.
        "SELECT import, stop FROM t",
    ] {
        accepted(sql);
    }
}

#[test]
fn the_refusal_message_names_the_statement_the_way_to_it_and_why() {
    let refusal = check_text("TRUNCATE mirror", Flavor::MySql).unwrap_err();
    assert_eq!(
        refusal_message(1, "CALL   app.p()", "procedure app.p runs ", &refusal),
        "post-load statement 2 (`CALL app.p()`) is refused: procedure app.p runs `TRUNCATE \
         mirror`: TRUNCATE commits the transaction on its own (DELETE FROM empties a table inside \
         it); a statement that ends the load's transaction would leave the new rows committed \
         whatever happens after it"
    );
}
