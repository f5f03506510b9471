//! Kiro (AWS CodeWhisperer) codec.

pub mod eventstream;
