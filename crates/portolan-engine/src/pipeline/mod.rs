//! Running a plan: stage order, batching, and the conversion to model hosts.
pub mod convert;
