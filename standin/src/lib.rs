//! A test fixture standing in for the proprietary Kompira Enterprise image
//! (`kompira.azurecr.io/kompira-enterprise`), which the lab cannot pull.
//!
//! One binary plays the image's three commands, `kompirad`, `uwsgi` and
//! `jobmngrd`, with the image's interfaces: its environment variables, its
//! log directory, and uwsgi on port 8000 behind nginx's `uwsgi_pass`. It
//! does none of Kompira's work; it connects to PostgreSQL (through
//! Pgpool-II), RabbitMQ and Redis for real and reports what it finds, so
//! the cluster tier can test the cluster around it. See README.md.

pub mod amqp;
pub mod checks;
pub mod config;
pub mod log;
pub mod pg;
pub mod resp;
pub mod run;
pub mod server;
pub mod url;
pub mod uwsgi;
