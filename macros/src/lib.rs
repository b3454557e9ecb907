//! Attribute macros of [unirun](https://docs.rs/unirun), re-exported by the
//! facade under its `macros` feature: use them as `#[unirun::…]`, not from
//! this crate.
//!
//! Each macro lives in a module of its own and only rewrites the item it is
//! put on into calls of the facade's public API, so what it does can be read
//! off the expansion.
