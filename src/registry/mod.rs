//! The registry's own data. So far: the accounts that log in to the API.

pub mod accounts;
