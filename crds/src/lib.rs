//! poolgate crds (to be implemented in its own issue).
