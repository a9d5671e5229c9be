//! Diesel table definitions of the code-exec store (the outbox and inbox come from the kernel).

diesel::table! {
    submissions (token) {
        token -> Text,
        tenant_id -> Text,
        user_id -> Text,
        language_id -> Integer,
        source_code -> Binary,
        stdin -> Binary,
        expected_output -> Nullable<Binary>,
        compiler_options -> Nullable<Text>,
        command_line_arguments -> Nullable<Text>,
        settings -> Text,
        status_id -> Integer,
        stdout -> Nullable<Binary>,
        stderr -> Nullable<Binary>,
        compile_output -> Nullable<Binary>,
        message -> Nullable<Text>,
        time -> Nullable<Double>,
        wall_time -> Nullable<Double>,
        memory -> Nullable<BigInt>,
        exit_code -> Nullable<Integer>,
        exit_signal -> Nullable<Integer>,
        created_at -> Timestamp,
        started_at -> Nullable<Timestamp>,
        finished_at -> Nullable<Timestamp>,
    }
}
