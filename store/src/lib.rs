//! poolgate storage layer.
