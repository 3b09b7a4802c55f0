pub mod config;
pub mod prefix;
