//! The store's bound on work: every pooled PostgreSQL connection has `statement_timeout` set,
//! SQLite work is interrupted past its deadline by a progress handler, and work that runs past
//! the bound is a retryable 503 naming the cause, never a 500 or a connection held for as long
//! as the query wants.

use diesel::{RunQueryDsl, connection::SimpleConnection, sql_types::Text};

use agora_shared::{
    db::{Db, DbConnection, STATEMENT_TIMEOUT, bound_sqlite_work},
    testing::TestDb,
};

#[derive(diesel::QueryableByName)]
struct Setting {
    #[diesel(sql_type = Text)]
    statement_timeout: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_past_the_timeout_is_a_retryable_503() {
    let Some(test_db) = TestDb::postgres() else {
        return;
    };
    let db = Db::connect(&test_db.url, 2).unwrap();
    let shown = db
        .read(|conn| {
            let row: Setting = diesel::sql_query("SHOW statement_timeout").get_result(conn)?;
            Ok(row.statement_timeout)
        })
        .await
        .unwrap();
    assert_eq!(shown, format!("{}s", STATEMENT_TIMEOUT.as_secs()));
    // The same bound, made short for the test: the statement is cancelled and answered 503.
    let err = db
        .read(|conn| {
            if let DbConnection::Postgres(pg) = conn {
                pg.batch_execute("SET statement_timeout = 50")?;
            }
            diesel::sql_query("SELECT pg_sleep(2)").execute(conn)?;
            Ok(())
        })
        .await
        .unwrap_err();
    assert_eq!(err.problem().status, 503);
    assert_eq!(err.problem().code, "store.timeout");
}

#[derive(diesel::QueryableByName, Debug)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// A query that never ends by itself.
const ENDLESS: &str = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) \
                       SELECT count(*) AS n FROM c";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_work_past_its_deadline_is_interrupted_with_a_503() {
    let test_db = TestDb::sqlite();
    let db = Db::connect(&test_db.url, 1).unwrap();
    // The same bound as every read and write, made short for the test.
    let err = db
        .read(|conn| {
            bound_sqlite_work(std::time::Duration::from_millis(50));
            let row: Count = diesel::sql_query(ENDLESS).get_result(conn)?;
            Ok(row.n)
        })
        .await
        .unwrap_err();
    assert_eq!(err.problem().status, 503);
    assert_eq!(err.problem().code, "store.timeout");
    // A write past it is rolled back, and the one connection serves the next request.
    db.write(|conn| {
        conn.batch_execute("CREATE TABLE t (x INTEGER)")?;
        Ok(())
    })
    .await
    .unwrap();
    let err = db
        .write(|conn| {
            conn.batch_execute("INSERT INTO t VALUES (1)")?;
            bound_sqlite_work(std::time::Duration::from_millis(50));
            // A writing statement: SQLite rolls the transaction back itself when interrupted.
            diesel::sql_query(
                "INSERT INTO t WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) \
                 SELECT x FROM c",
            )
            .execute(conn)?;
            Ok(())
        })
        .await
        .unwrap_err();
    assert_eq!(err.problem().code, "store.timeout");
    let rows = db
        .read(|conn| {
            let row: Count = diesel::sql_query("SELECT count(*) AS n FROM t").get_result(conn)?;
            Ok(row.n)
        })
        .await
        .unwrap();
    assert_eq!(rows, 0);
}
