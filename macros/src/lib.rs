//! Attribute macros of [unirun](https://docs.rs/unirun), re-exported by the
//! facade under its `macros` feature: use them as `#[unirun::…]`, not from
//! this crate.
//!
//! Each macro lives in a module of its own and only rewrites the item it is
//! put on into calls of the facade's public API, so what it does can be read
//! off the expansion.

mod remote;

/// Makes a `fn(A) -> R` callable on cluster workers (feature
/// `cluster-backend`): registers it by its module path, with its argument
/// and result types, so `Run::call` on a `Flavor::Cluster` scope can send
/// its name instead of its address. See `unirun::cluster`.
#[proc_macro_attribute]
pub fn remote(
    attr: proc_macro::TokenStream,
    item: proc_macro::TokenStream,
) -> proc_macro::TokenStream {
    remote::expand(attr.into(), item.into()).into()
}
