//! End-to-end tests against real nats-server processes.

mod acl;
mod beacons;
mod binaries;
mod events;
mod external;
mod faults;
mod hostile;
mod jobcontrol;
mod jobs;
mod keys;
mod orchestrate;
mod queue;
mod schedule;
mod security;
mod shell;
mod states;
mod swarm;
mod targeting;
