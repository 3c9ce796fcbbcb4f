//! State files: reading them (YAML with positions) and rendering them (Jinja).

pub mod render;
pub mod yaml;
