//! poolgate proxy (to be implemented in its own issue).
