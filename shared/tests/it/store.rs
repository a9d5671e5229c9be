//! The store's bound on one statement (PostgreSQL): every pooled connection has
//! `statement_timeout` set, and a statement that runs past it is a retryable 503 naming the
//! cause, never a 500 or a connection held for as long as the statement wants.

use diesel::{RunQueryDsl, connection::SimpleConnection, sql_types::Text};

use agora_shared::{
    db::{Db, DbConnection, STATEMENT_TIMEOUT},
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
