//! route53 calls (filled in by the traits work).
