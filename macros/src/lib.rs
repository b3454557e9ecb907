//! Attribute macros of [unirun](https://docs.rs/unirun), re-exported by the
//! facade under its `macros` feature: use them as `#[unirun::…]`, not from
//! this crate.
//!
//! Each macro lives in a module of its own and only rewrites the item it is
//! put on into calls of the facade's public API, so what it does can be read
//! off the expansion.

use proc_macro::TokenStream;

mod entry;

/// Runs an `async fn main` in `unirun::block_on`; see `unirun::main`.
#[proc_macro_attribute]
pub fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    entry::expand(entry::Entry::Main, args.into(), item.into()).into()
}

/// Runs an `async fn` test in `unirun::block_on`; see `unirun::test`.
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    entry::expand(entry::Entry::Test, args.into(), item.into()).into()
}

mod remote;

/// Makes a `fn(A) -> R` callable on cluster workers (feature
/// `cluster-backend`): registers it by its module path, name and line,
/// with its argument and result types, so `Run::call` on a
/// `Flavor::Cluster` scope can send its name instead of its address. The
/// function is made `#[inline(never)]` and given a body no other function
/// shares, so it has one address of its own in any build; `#[inline]` on
/// it is a compile error. See `unirun::cluster`.
#[proc_macro_attribute]
pub fn remote(attr: TokenStream, item: TokenStream) -> TokenStream {
    remote::expand(attr.into(), item.into()).into()
}
