//! What the code-exec service publishes, on `agora.code-exec.events` (it consumes nothing):
//! a Judge0 submission's verdict, keyed by its token, and an exercise attempt's score, keyed by
//! the attempt. Each is written to the outbox in the transaction that stores the verdict. No
//! event carries a program's source, input or output.

use prost::Message;

use agora_proto::events::v1 as ev;
use agora_shared::{
    AppResult,
    bus::{Event, Outbox, topic_for},
    db::DbConnection,
};

pub const SOURCE: &str = "agora/code-exec";

pub fn topic() -> String {
    topic_for(crate::NAME)
}

fn emit(
    conn: &mut DbConnection,
    name: &str,
    key: &str,
    tenant_id: &str,
    message: &impl Message,
) -> AppResult<()> {
    let event = Event::new(
        SOURCE,
        &format!("agora.code_exec.{name}"),
        key,
        Some(tenant_id.to_owned()),
        message.encode_to_vec(),
    );
    Outbox::enqueue(conn, &topic(), &event)
}

pub fn submission_finished(
    conn: &mut DbConnection,
    message: &ev::SubmissionFinished,
) -> AppResult<()> {
    emit(
        conn,
        "submission.finished",
        &message.token,
        &message.tenant_id,
        message,
    )
}

pub fn attempt_finished(conn: &mut DbConnection, message: &ev::AttemptFinished) -> AppResult<()> {
    emit(
        conn,
        "attempt.finished",
        &message.attempt_id,
        &message.tenant_id,
        message,
    )
}
