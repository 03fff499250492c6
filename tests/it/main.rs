//! Integration tests: one binary (every extra binary links DataFusion again).

mod assess;
mod cases;
mod cli;
#[cfg(feature = "cluster")]
mod cluster;
mod common;
mod crash;
mod differential;
mod disclosure;
mod faults;
mod history;
mod indicators;
mod models;
mod pipeline;
mod python;
mod review;
mod s3;
mod same_period;
mod serve;
mod shell;
mod writers;
