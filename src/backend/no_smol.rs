//! The smol backend's interface when it is not compiled in (feature
//! `smol-backend` off): the scheduler never plans smol then, and there are
//! no smol handles (the type has no values).

super::absent_handle!(Smol, "smol-backend");
