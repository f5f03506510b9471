//! poolgate operator (to be implemented in its own issue).
