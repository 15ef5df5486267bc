//! The status socket: the server, and its client commands against a
//! running agent.

mod agent;
mod server;
