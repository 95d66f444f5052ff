//! cairn: a GitOps engine. The pipeline runs one way through typed stages:
//! repository snapshot → rendered objects → validation findings → plan → apply → release record.

pub mod config;
pub mod duration;
pub mod error;
pub mod expr;
pub mod fs;
pub mod pointer;
pub mod process;
pub mod render;
pub mod repo;
pub mod suggest;
pub mod yaml;

pub use error::{Error, Result};
pub mod apply;
pub mod check;
pub mod cli;
pub mod delivery;
pub mod events;
pub mod gate;
pub mod notify;
pub mod ordering;
pub mod owners;
pub mod pipeline;
pub mod plan;
pub mod policy;
pub mod release;
pub mod report;
pub mod scaffold;
pub mod secrets;
pub mod shard;
pub mod target;
pub mod validate;
