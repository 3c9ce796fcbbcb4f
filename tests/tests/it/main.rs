//! End-to-end tests against real nats-server processes.

mod acl;
mod binaries;
mod events;
mod external;
mod faults;
mod hostile;
mod jobcontrol;
mod jobs;
mod keys;
mod queue;
mod security;
mod states;
mod targeting;
