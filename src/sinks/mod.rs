//! sinks: where judged sessions go. For now the verification report and its renderings;
//! metrics and alerts join when `serve` lands. Sinks never change correlation state.

pub mod alertmanager;
pub mod metrics;
pub mod render;
pub mod report;
