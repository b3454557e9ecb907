//! `#[unirun::main]` and `#[unirun::test]`: an `async fn` whose body runs
//! in `unirun::block_on`.
//!
//! Both rewrite `async fn name() -> R { body }` into
//! `fn name() -> R { ::unirun::block_on(async move { body }) }` (the test
//! form with `#[test]` in front, and `unirun::__block_on_test`, which also
//! checks what the body left behind), keeping the function's other attributes,
//! visibility and return type. They take no arguments.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::{parse2, AttrStyle, Attribute, Error, ItemFn};

/// Which attribute is being expanded.
#[derive(Clone, Copy)]
pub(crate) enum Entry {
    Main,
    Test,
}

impl Entry {
    fn name(self) -> &'static str {
        match self {
            Entry::Main => "#[unirun::main]",
            Entry::Test => "#[unirun::test]",
        }
    }
}

/// Expands `entry` on `item`; a misuse becomes a `compile_error!` that
/// names the attribute and what it accepts.
pub(crate) fn expand(entry: Entry, args: TokenStream, item: TokenStream) -> TokenStream {
    match rewrite(entry, args, item) {
        Ok(tokens) => tokens,
        Err(err) => err.to_compile_error(),
    }
}

fn rewrite(entry: Entry, args: TokenStream, item: TokenStream) -> Result<TokenStream, Error> {
    if !args.is_empty() {
        return Err(Error::new_spanned(
            args,
            format!(
                "{} takes no arguments; configure unirun with unirun::configure(..) \
                 or the UNIRUN_* environment variables",
                entry.name()
            ),
        ));
    }
    let mut function: ItemFn = parse2(item)?;
    let sig = &mut function.sig;
    if sig.asyncness.take().is_none() {
        return Err(Error::new_spanned(
            sig.fn_token,
            format!("{} goes on an `async fn`", entry.name()),
        ));
    }
    if !sig.inputs.is_empty() {
        return Err(Error::new_spanned(
            &sig.inputs,
            format!("{} goes on a function without arguments", entry.name()),
        ));
    }
    if matches!(entry, Entry::Main) && sig.ident != "main" {
        return Err(Error::new(
            Span::call_site(),
            "#[unirun::main] goes on `async fn main`",
        ));
    }
    let stmts = &function.block.stmts;
    // The body's inner attributes (`#![allow(..)]`) stay the body's: they
    // open the async block, where the body now is (in front of the `fn`
    // they would be refused as inner attributes out of place).
    let (inner, outer): (Vec<&Attribute>, Vec<&Attribute>) = function
        .attrs
        .iter()
        .partition(|attr| matches!(attr.style, AttrStyle::Inner(_)));
    let (vis, sig) = (&function.vis, &function.sig);
    let test = match entry {
        Entry::Test => quote!(#[::core::prelude::v1::test]),
        Entry::Main => quote!(),
    };
    // A test's body runs in the call that also checks what the body left
    // behind (a paused tokio clock, see `unirun::__block_on_test`).
    let block_on = match entry {
        Entry::Test => quote!(::unirun::__block_on_test),
        Entry::Main => quote!(::unirun::block_on),
    };
    Ok(quote! {
        #test
        #(#outer)*
        #vis #sig {
            #block_on(async move {
                #(#inner)*
                #(#stmts)*
            })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::{expand, Entry};
    use quote::quote;

    fn expanded(
        entry: Entry,
        args: proc_macro2::TokenStream,
        item: proc_macro2::TokenStream,
    ) -> String {
        expand(entry, args, item).to_string()
    }

    #[test]
    fn main_runs_the_body_in_block_on_and_keeps_attributes_and_return_type() {
        let out = expanded(
            Entry::Main,
            quote!(),
            quote!(
                #[allow(unused)]
                async fn main() -> Result<(), String> {
                    Ok(())
                }
            ),
        );
        assert!(out.contains(":: unirun :: block_on (async move"), "{out}");
        assert!(out.contains("# [allow (unused)]"), "{out}");
        assert!(
            out.contains("fn main () -> Result < () , String >"),
            "{out}"
        );
        assert!(!out.contains("async fn"), "{out}");
        assert!(!out.contains("compile_error"), "{out}");
    }

    #[test]
    fn test_puts_the_test_attribute_in_front() {
        let out = expanded(
            Entry::Test,
            quote!(),
            quote!(
                async fn adds() {
                    assert_eq!(1 + 1, 2);
                }
            ),
        );
        assert!(
            out.starts_with("# [:: core :: prelude :: v1 :: test]"),
            "{out}"
        );
        assert!(out.contains(":: unirun :: __block_on_test"), "{out}");
    }

    /// The body's inner attributes open the async block the body moves
    /// into, not the `fn` (where they would be refused): the expansion
    /// keeps them after `async move {`, and nothing before it.
    #[test]
    fn inner_attributes_of_the_body_stay_in_the_body() {
        let out = expanded(
            Entry::Test,
            quote!(),
            quote!(
                #[should_panic]
                async fn quiet() {
                    #![allow(unused_variables)]
                    let x = 1;
                }
            ),
        );
        let opened = out.find("async move {").expect("the async block");
        let inner = out
            .find("# ! [allow (unused_variables)]")
            .unwrap_or_else(|| panic!("the inner attribute is kept: {out}"));
        assert!(opened < inner, "{out}");
        assert!(out.contains("# [should_panic]"), "{out}");
        assert!(!out.contains("compile_error"), "{out}");
    }

    /// Each misuse is a `compile_error!` naming the attribute and what it
    /// accepts.
    #[test]
    fn misuses_name_the_attribute_and_what_it_accepts() {
        let cases = [
            (
                Entry::Main,
                quote!(flavor = "threads"),
                quote!(
                    async fn main() {}
                ),
                "#[unirun::main] takes no arguments",
            ),
            (
                Entry::Test,
                quote!(),
                quote!(
                    fn plain() {}
                ),
                "#[unirun::test] goes on an `async fn`",
            ),
            (
                Entry::Test,
                quote!(),
                quote!(
                    async fn with(x: u32) {}
                ),
                "#[unirun::test] goes on a function without arguments",
            ),
            (
                Entry::Main,
                quote!(),
                quote!(
                    async fn start() {}
                ),
                "#[unirun::main] goes on `async fn main`",
            ),
        ];
        for (entry, args, item, message) in cases {
            let out = expanded(entry, args, item);
            assert!(out.contains("compile_error"), "{out}");
            assert!(out.contains(message), "expected {message:?} in {out}");
        }
    }

    #[test]
    fn an_item_that_is_not_a_function_is_a_parse_error() {
        let out = expanded(
            Entry::Main,
            quote!(),
            quote!(
                struct NotAFunction;
            ),
        );
        assert!(out.contains("compile_error"), "{out}");
    }
}
