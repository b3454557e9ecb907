//! The tokio backend's interface when it is not compiled in (feature
//! `tokio-backend` off): the scheduler never plans tokio then, and there
//! are no tokio handles (the type has no values).

super::absent_handle!(Tokio, "tokio-backend");
