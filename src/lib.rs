pub mod config;
pub mod diff;
pub mod elements;
pub mod event;
pub mod observed;
pub mod plan;
pub mod prefix;
pub mod wire;
