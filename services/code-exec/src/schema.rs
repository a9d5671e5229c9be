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
        attempt_id -> Nullable<Text>,
        case_index -> Nullable<Integer>,
    }
}

diesel::table! {
    exercises (tenant_id, id) {
        tenant_id -> Text,
        id -> Text,
        title -> Text,
        language_ids -> Text,
        cases -> Text,
        limits -> Text,
        case_count -> Integer,
        max_score -> Integer,
        version -> Integer,
        updated_by -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    attempts (id) {
        id -> Text,
        tenant_id -> Text,
        exercise_id -> Text,
        exercise_version -> Integer,
        user_id -> Text,
        language_id -> Integer,
        cases -> Text,
        score -> Nullable<Integer>,
        max_score -> Integer,
        passed -> Nullable<Bool>,
        created_at -> Timestamp,
        finished_at -> Nullable<Timestamp>,
    }
}

diesel::allow_tables_to_appear_in_same_query!(submissions, attempts);
