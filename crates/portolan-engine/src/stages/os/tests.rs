//! Stage tests.
