//! Integration tests: the real service on free loopback ports against real SQLite and PostgreSQL
//! (and RabbitMQ / pgw-sim where a test needs them), driven over HTTP.

mod broker;
mod cli;
mod consumer_example;
mod deploy_metrics;
mod documents;
mod event_schema;
mod frontend_returns;
mod grouped_writes;
mod helpers;
mod integrity;
mod internal_api;
mod invoices;
mod named_tokens;
mod notifications;
mod operator;
mod process;
mod public_listener;
mod reconciliation;
mod retention;
mod return_wait;
mod seed_flow;
mod sim;
mod trace_export;
mod trust_boundary;
