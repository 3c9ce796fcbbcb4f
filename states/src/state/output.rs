//! Highstate output (next).
