//! sinks: where judged sessions go out of the process — Prometheus metrics and Alertmanager
//! alerts. Sinks never change correlation state. (The verdict model is `report`.)

pub mod alertmanager;
pub mod metrics;
pub mod self_metrics;
