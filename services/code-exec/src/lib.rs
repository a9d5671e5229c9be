//! Agora's code execution service (Judge0-compatible). This part is its engine: the sandbox
//! ([`sandbox::Sandbox`]), the languages found on the host ([`languages`]), a submission from
//! source to verdict ([`judge`]) and Judge0's statuses ([`status`]). The service around it (the
//! Judge0 API, the queue, exercises) is still to come.

#[cfg(target_os = "linux")]
pub mod judge;
pub mod languages;
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub mod sandbox;
#[cfg(target_os = "linux")]
pub mod status;
