//! Loom models of the lane's counters (placeholder, filled in below).
