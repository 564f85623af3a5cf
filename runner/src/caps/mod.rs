//! One module per capability. Each has `validate`, callable without running anything,
//! and `apply`, which grants exactly what the plan says on a context that starts empty.

pub mod env;
pub mod files;
pub mod limits;
pub mod network;
