//! What every part of the daemon runs with: `log` (logging to journald or
//! stderr, and `LogLimit`) and `shutdown` (the stop signal every task
//! waits on).

pub mod log;
pub mod shutdown;
