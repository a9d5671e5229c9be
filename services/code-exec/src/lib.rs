//! Agora's code execution service (Judge0-compatible). This part is its sandbox; the service
//! around it (the Judge0 API, the queue, exercises) builds on [`sandbox::Sandbox`] and the
//! statuses in [`status`].

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub mod sandbox;
#[cfg(target_os = "linux")]
pub mod status;
