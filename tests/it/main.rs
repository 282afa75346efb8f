//! The one integration-test binary: end-to-end tests over real HTTP, with the built-in WeCom
//! simulator (or a standalone one) standing in for WeCom.

// Helpers are `pub` so every test module can use them; nothing here is a public API.
#![allow(unreachable_pub)]

mod browser;
mod burst;
mod chaos;
mod cli;
mod common;
mod console;
mod crash;
mod crypto;
mod editor;
mod faq;
mod followup;
mod gateway;
mod incidents;
mod intake;
mod outbreak;
mod productivity;
mod reports;
mod snapshots;
mod storage;
