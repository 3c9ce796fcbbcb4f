//! End-to-end tests against real nats-server processes.

mod binaries;
mod external;
mod jobs;
mod keys;
mod security;
